/**
 * Small helpers the compliance suites (and core's own tests) share.
 *
 * @module
 */

/** `n` bytes of a deterministic pattern that depends on `seed`. */
export function patternBytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 31 + seed * 17 + ((i * seed) >> 3)) & 0xff;
  return out;
}

/** Resolves with what `promise` rejects with; throws when it fulfils. */
export async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected a rejection');
}
