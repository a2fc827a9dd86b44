/**
 * The key of a cached inference result: a SHA-256 over everything that decides the answer.
 *
 * @module
 */
import { platform } from '#platform';
import type { TensorData } from '../tensor/types.js';

/**
 * SHA-256 (hex) of the model name, the model version and each input's dtype, shape and
 * bytes, in input order. Every field is length-prefixed, so no two different requests share
 * a key by concatenation (e.g. shape `[1,6]` and `[6,1]` over the same bytes differ).
 * Tensor names are left out: they do not change the answer.
 */
export function resultCacheKey(model: string, version: string, inputs: readonly TensorData[]): string {
  const header = new TextEncoder().encode(
    JSON.stringify({
      model,
      version,
      inputs: inputs.map((t) => ({ dtype: t.dtype, shape: t.shape, bytes: t.data.byteLength })),
    }),
  );
  const length = new Uint8Array(4);
  new DataView(length.buffer).setUint32(0, header.byteLength, true);
  return platform.sha256Hex([
    length,
    header,
    ...inputs.map((t) => new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength)),
  ]);
}
