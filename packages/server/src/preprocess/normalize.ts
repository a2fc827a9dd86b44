/**
 * Normalisation of decoded pixels: `value = (pixel * scale - mean[c]) / std[c]`, one pass
 * over an interleaved `[height, width, channels]` array.
 *
 * @module
 */
import type { ResolvedPreprocess } from './config.js';

/**
 * Normalises interleaved 8-bit `pixels` with `channels` channels into a new Float32Array.
 * Folds each channel's formula into one multiply-add: `pixel * (scale / std) - mean / std`.
 */
export function normalizePixels(
  pixels: Uint8Array,
  channels: number,
  config: Pick<ResolvedPreprocess, 'scale' | 'mean' | 'std'>,
): Float32Array {
  const out = new Float32Array(pixels.length);
  const mul = new Float64Array(channels);
  const add = new Float64Array(channels);
  for (let c = 0; c < channels; c++) {
    const std = config.std[c] ?? 1;
    mul[c] = config.scale / std;
    add[c] = -(config.mean[c] ?? 0) / std;
  }
  if (channels === 1) {
    const m = mul[0]!;
    const a = add[0]!;
    for (let i = 0; i < pixels.length; i++) out[i] = pixels[i]! * m + a;
    return out;
  }
  for (let i = 0; i < pixels.length; i += channels) {
    for (let c = 0; c < channels; c++) out[i + c] = pixels[i + c]! * mul[c]! + add[c]!;
  }
  return out;
}
