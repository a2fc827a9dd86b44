/**
 * Per-tensor affine int8 encoding for float32 tensors: `value ≈ (q - zeroPoint) * scale`.
 * The range is widened to include 0 (so zero is exact) and split into 255 steps, so every
 * finite value comes back within `scale / 2` of where it started.
 *
 * @module
 */
import { DinferError, DinferErrorCode } from '../errors.js';
import type { Int8Quantization } from './types.js';

/** Chooses scale and zero point covering `[min(values, 0), max(values, 0)]`; needs finite values. */
export function int8Parameters(values: Float32Array): Int8Quantization {
  let min = 0;
  let max = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (!Number.isFinite(v)) {
      throw new DinferError(
        DinferErrorCode.TENSOR_INVALID,
        'int8 encoding needs finite values (found NaN or infinity)',
      );
    }
    if (v < min) min = v;
    else if (v > max) max = v;
  }
  if (max === min) return { scale: 1, zeroPoint: 0 };
  const scale = (max - min) / 255;
  const zeroPoint = Math.min(127, Math.max(-128, Math.round(-128 - min / scale)));
  return { scale, zeroPoint };
}

/** Quantizes `values` with `q`; codes are clamped to [-128, 127]. */
export function quantizeInt8(values: Float32Array, q: Int8Quantization): Int8Array {
  const out = new Int8Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const code = Math.round(values[i]! / q.scale) + q.zeroPoint;
    out[i] = Math.min(127, Math.max(-128, code));
  }
  return out;
}

/** Restores float32 values from int8 codes. */
export function dequantizeInt8(codes: Int8Array, q: Int8Quantization): Float32Array {
  const out = new Float32Array(codes.length);
  for (let i = 0; i < codes.length; i++) out[i] = (codes[i]! - q.zeroPoint) * q.scale;
  return out;
}
