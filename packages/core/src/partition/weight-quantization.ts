/**
 * Weight quantization in TensorFlow.js's own artifact format: a float32 weight is stored as
 * float16 or as affine uint8, and its `weightsManifest` entry keeps `dtype: 'float32'` and
 * gains the standard `quantization` field (`{dtype: 'float16'}` or
 * `{dtype: 'uint8', scale, min}`), exactly as the `tensorflowjs_converter`
 * `--quantize_float16` / `--quantize_uint8` options write it. Plain `tf.loadLayersModel` (its
 * `decodeWeights`) dequantizes such artifacts on load: values are `q * scale + min` for
 * uint8 and the float16 value for float16, computed in float32.
 *
 * Only float32 weights are quantized; int32 (and other) weights are stored as they are.
 *
 * @module
 */
import type * as tf from '@tensorflow/tfjs';
import { io as tfio } from '@tensorflow/tfjs';
import { DinferError, DinferErrorCode } from '../errors.js';
import { float32ToFloat16 } from '../tensor/fp16.js';

/** How weights are stored: 2 bytes (`float16`) or 1 byte (`uint8`, affine) per value. */
export type WeightQuantization = 'float16' | 'uint8';

/** Every {@link WeightQuantization}, for validation. */
export const WEIGHT_QUANTIZATIONS: readonly WeightQuantization[] = ['float16', 'uint8'];

/** A quantized weight: the stored bytes and the manifest's `quantization` field for them. */
export interface QuantizedWeight {
  readonly bytes: Uint8Array;
  readonly quantization: NonNullable<tf.io.WeightsManifestEntry['quantization']>;
}

/** Affine uint8 parameters: `value ~ q * scale + min`, with 0 exactly representable. */
export function uint8Parameters(values: Float32Array): { scale: number; min: number } {
  let lo = Number.POSITIVE_INFINITY;
  let hi = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  if (values.length === 0 || lo === hi) return { scale: 1, min: values.length === 0 ? 0 : lo };
  const scale = (hi - lo) / 255;
  if (lo >= 0 || hi <= 0) return { scale, min: lo };
  // Nudge the range so that 0 maps to an integer code (zero padding and zero weights stay 0).
  const zeroPoint = Math.round(-lo / scale);
  return { scale, min: -zeroPoint * scale };
}

/**
 * Quantizes float32 `values` to TF.js's stored format.
 *
 * @throws DinferError INVALID_ARGUMENT for an unknown quantization, or for `uint8` when a value
 *   is NaN or infinite (an affine range cannot hold it).
 */
export function quantizeWeight(
  values: Float32Array,
  quantization: WeightQuantization,
  name = '<weight>',
): QuantizedWeight {
  if (quantization === 'float16') {
    const halves = float32ToFloat16(values);
    return {
      bytes: new Uint8Array(halves.buffer, halves.byteOffset, halves.byteLength),
      quantization: { dtype: 'float16' },
    };
  }
  if (quantization !== 'uint8') {
    throw new DinferError(
      DinferErrorCode.INVALID_ARGUMENT,
      `weight quantization must be float16 or uint8, got ${JSON.stringify(quantization)}`,
    );
  }
  for (let i = 0; i < values.length; i++) {
    if (!Number.isFinite(values[i]!)) {
      throw new DinferError(
        DinferErrorCode.INVALID_ARGUMENT,
        `weight ${name} holds a non-finite value at index ${i}: uint8 quantization needs finite weights`,
        { details: { weight: name, index: i } },
      );
    }
  }
  const { scale, min } = uint8Parameters(values);
  const codes = new Uint8Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const q = Math.round((values[i]! - min) / scale);
    codes[i] = Math.max(0, Math.min(255, q));
  }
  return { bytes: codes, quantization: { dtype: 'uint8', scale, min } };
}

/**
 * Replaces a model's float32 weights, in place, with what TF.js decodes from their quantized
 * form: after this, the model computes exactly what a worker that loads the quantized stage
 * artifacts computes (the master's degraded mode and warm-up reference rely on it).
 * Re-quantizing the rounded values gives the same codes, so shipped blobs do not change.
 */
export function roundModelWeights(model: tf.LayersModel, quantization: WeightQuantization): void {
  for (const layer of model.layers) {
    const weights = layer.weights;
    if (weights.length === 0 || weights.every((w) => w.dtype !== 'float32')) continue;
    const values = layer.getWeights();
    const rounded = values.map((tensor, i) => {
      if (tensor.dtype !== 'float32') return tensor;
      const { bytes, quantization: spec } = quantizeWeight(
        tensor.dataSync() as Float32Array,
        quantization,
        weights[i]?.originalName,
      );
      const copy = bytes.slice().buffer;
      const decoded = tfio.decodeWeights(copy, [
        { name: 'w', shape: tensor.shape, dtype: 'float32', quantization: spec },
      ]);
      return decoded.w as tf.Tensor;
    });
    layer.setWeights(rounded);
    for (const [i, t] of rounded.entries()) if (t !== values[i]) t.dispose();
  }
}
