/**
 * A small, fast, seeded pseudo-random number generator for reproducible example weights.
 *
 * @module
 */

/** A seeded source of uniform numbers in `[0, 1)`. Same seed, same sequence, on every platform. */
export interface SeededRandom {
  /** The next uniform number in `[0, 1)`. */
  next(): number;
  /** Fills `out` with uniform numbers in `[low, high)` and returns it. */
  fillUniform(out: Float32Array, low: number, high: number): Float32Array;
}

/** Mixes a 32-bit integer (the splitmix32 finaliser); used to derive independent seeds. */
function mix32(value: number): number {
  let z = (value + 0x9e3779b9) | 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

/**
 * Derives a 32-bit seed from a base seed and a label (e.g. a weight name), so that each weight
 * gets its own stream whatever order the weights are generated in.
 */
export function deriveSeed(seed: number, label: string): number {
  let hash = 0x811c9dc5 ^ mix32(seed >>> 0);
  for (let i = 0; i < label.length; i++) {
    hash = Math.imul(hash ^ label.charCodeAt(i), 0x01000193);
  }
  return mix32(hash >>> 0);
}

/**
 * Creates a {@link SeededRandom} (the sfc32 generator, 128-bit state) from a 32-bit seed.
 * Not cryptographic: for reproducible test data and weights only.
 */
export function seededRandom(seed: number): SeededRandom {
  let a = mix32(seed >>> 0);
  let b = mix32(a ^ 0x6a09e667);
  let c = mix32(b ^ 0xbb67ae85);
  let d = 1;
  const step = (): number => {
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return t >>> 0;
  };
  for (let i = 0; i < 12; i++) step();
  return {
    next: () => step() / 4294967296,
    fillUniform(out, low, high) {
      const scale = (high - low) / 4294967296;
      for (let i = 0; i < out.length; i++) out[i] = low + step() * scale;
      return out;
    },
  };
}
