/**
 * Weight quantization in TensorFlow.js's own artifact format: a float32 weight is stored as
 * float16 or as affine uint8 (or uint16), and its `weightsManifest` entry keeps
 * `dtype: 'float32'` and gains the standard `quantization` field (`{dtype: 'float16'}` or
 * `{dtype: 'uint8', scale, min}`), exactly as the `tensorflowjs_converter`
 * `--quantize_float16` / `--quantize_uint8` options write it. Plain `tf.loadLayersModel` (its
 * `decodeWeights`) dequantizes such artifacts on load: values are `q * scale + min` for
 * uint8/uint16 and the float16 value for float16, computed in float32.
 *
 * A weight is quantized either to a {@link WeightQuantization} the operator picks (new affine
 * parameters from its values), or to the {@link StoredQuantization} its source artifacts used
 * (their `scale` and `min` again, so a weight loaded from them is stored with the very codes
 * it came in). Only float32 weights are quantized; int32 (and other) weights are stored as
 * they are.
 *
 * @module
 */
import type * as tf from '@tensorflow/tfjs';
import { io as tfio } from '@tensorflow/tfjs';
import { DinferError, DinferErrorCode } from '../errors.js';
import type { StoredQuantization, WeightQuantizationByName } from '../model/source-quantization.js';
import { float16ToFloat32, float32ToFloat16 } from '../tensor/fp16.js';

/** How weights are stored: 2 bytes (`float16`) or 1 byte (`uint8`, affine) per value. */
export type WeightQuantization = 'float16' | 'uint8';

/** Every {@link WeightQuantization}, for validation. */
export const WEIGHT_QUANTIZATIONS: readonly WeightQuantization[] = ['float16', 'uint8'];

/**
 * Which weights to quantize, and how: one {@link WeightQuantization} for every float32 weight,
 * or a stored form per weight name (the others stay as they are).
 */
export type WeightQuantizationPlan = WeightQuantization | WeightQuantizationByName;

/** A quantized weight: the stored bytes and the manifest's `quantization` field for them. */
export interface QuantizedWeight {
  readonly bytes: Uint8Array;
  readonly quantization: StoredQuantization;
}

/** Affine parameters for `levels` codes: `value ~ q * scale + min`, with 0 exactly representable. */
function affineParameters(values: Float32Array, levels: number): { scale: number; min: number } {
  let lo = Number.POSITIVE_INFINITY;
  let hi = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  if (values.length === 0 || lo === hi) return { scale: 1, min: values.length === 0 ? 0 : lo };
  const scale = (hi - lo) / (levels - 1);
  if (lo >= 0 || hi <= 0) return { scale, min: lo };
  // Nudge the range so that 0 maps to an integer code (zero padding and zero weights stay 0).
  const zeroPoint = Math.round(-lo / scale);
  return { scale, min: -zeroPoint * scale };
}

/** Affine uint8 parameters: `value ~ q * scale + min`, with 0 exactly representable. */
export function uint8Parameters(values: Float32Array): { scale: number; min: number } {
  return affineParameters(values, 256);
}

/** True when every value's code under `scale` and `min` lies in `0 .. levels - 1`. */
function fitsRange(values: Float32Array, scale: number, min: number, levels: number): boolean {
  if (!(scale > 0)) return false;
  for (let i = 0; i < values.length; i++) {
    const q = Math.round((values[i]! - min) / scale);
    if (!(q >= 0 && q < levels)) return false;
  }
  return true;
}

function checkFinite(values: Float32Array, dtype: string, name: string): void {
  for (let i = 0; i < values.length; i++) {
    if (!Number.isFinite(values[i]!)) {
      throw new DinferError(
        DinferErrorCode.INVALID_ARGUMENT,
        `weight ${name} holds a non-finite value at index ${i}: ${dtype} quantization needs finite weights`,
        { details: { weight: name, index: i } },
      );
    }
  }
}

/**
 * Quantizes float32 `values` to TF.js's stored format. Given a {@link StoredQuantization}
 * with `scale` and `min` (a source artifact's), it keeps them when every value fits their
 * range, so values decoded from those codes get the same codes again; otherwise (the weights
 * changed since) it picks new ones for the same code width.
 *
 * @throws DinferError INVALID_ARGUMENT for an unknown quantization, or for `uint8`/`uint16`
 *   when a value is NaN or infinite (an affine range cannot hold it).
 */
export function quantizeWeight(
  values: Float32Array,
  quantization: WeightQuantization | StoredQuantization,
  name = '<weight>',
): QuantizedWeight {
  const stored: StoredQuantization =
    typeof quantization === 'string' ? { dtype: quantization } : quantization;
  const dtype = (stored as { dtype?: unknown } | null)?.dtype;
  if (dtype === 'float16') return { bytes: encodeQuantized(values, { dtype }), quantization: { dtype } };
  if (dtype !== 'uint8' && dtype !== 'uint16') {
    throw new DinferError(
      DinferErrorCode.INVALID_ARGUMENT,
      `weight quantization must be float16, uint8 or uint16, got ${JSON.stringify(quantization)}`,
    );
  }
  checkFinite(values, dtype, name);
  const levels = dtype === 'uint8' ? 256 : 65536;
  const { scale, min } =
    stored.scale !== undefined &&
    stored.min !== undefined &&
    fitsRange(values, stored.scale, stored.min, levels)
      ? { scale: stored.scale, min: stored.min }
      : affineParameters(values, levels);
  const parameters: StoredQuantization = { dtype, scale, min };
  return { bytes: encodeQuantized(values, parameters), quantization: parameters };
}

/**
 * The stored bytes of `values` in a form whose parameters are already fixed (`float16`, or
 * `uint8`/`uint16` with `scale` and `min`): value by value, so any run of whole values of a
 * weight encodes to the same bytes as that run of the whole weight's encoding. Codes out of
 * range are clamped.
 */
export function encodeQuantized(values: Float32Array, quantization: StoredQuantization): Uint8Array {
  if (quantization.dtype === 'float16') {
    const halves = float32ToFloat16(values);
    return new Uint8Array(halves.buffer, halves.byteOffset, halves.byteLength);
  }
  const levels = quantization.dtype === 'uint8' ? 256 : 65536;
  const scale = quantization.scale ?? 1;
  const min = quantization.min ?? 0;
  const codes =
    quantization.dtype === 'uint8' ? new Uint8Array(values.length) : new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const q = Math.round((values[i]! - min) / scale);
    codes[i] = Math.max(0, Math.min(levels - 1, q));
  }
  return new Uint8Array(codes.buffer, codes.byteOffset, codes.byteLength);
}

/** Bytes one value takes stored in `quantization` (4 when stored as float32). */
export function storedElementBytes(quantization: StoredQuantization | undefined): 1 | 2 | 4 {
  const dtype = quantization?.dtype;
  return dtype === 'uint8' ? 1 : dtype === 'float16' || dtype === 'uint16' ? 2 : 4;
}

/**
 * The float32 values of a float32 weight's stored bytes, as TF.js's `decodeWeights` computes
 * them (`q * scale + min` for uint8/uint16, the float16 value for float16).
 */
export function decodeStored(bytes: Uint8Array, quantization: StoredQuantization | undefined): Float32Array {
  const whole = bytes.byteOffset % 4 === 0 ? bytes : bytes.slice();
  const dtype = quantization?.dtype;
  if (dtype === undefined) return new Float32Array(whole.buffer, whole.byteOffset, whole.byteLength / 4);
  if (dtype === 'float16')
    return float16ToFloat32(new Uint16Array(whole.buffer, whole.byteOffset, whole.byteLength / 2));
  const codes =
    dtype === 'uint8' ? whole : new Uint16Array(whole.buffer, whole.byteOffset, whole.byteLength / 2);
  const values = new Float32Array(codes.length);
  const scale = quantization?.scale ?? 1;
  const min = quantization?.min ?? 0;
  for (let i = 0; i < codes.length; i++) values[i] = codes[i]! * scale + min;
  return values;
}

/**
 * How `plan` stores the weight `name` of dtype `dtype`: `undefined` when it stays as it is
 * (not float32, or a per-weight plan that does not name it).
 */
export function plannedQuantization(
  plan: WeightQuantizationPlan | undefined,
  name: string,
  dtype: string,
): WeightQuantization | StoredQuantization | undefined {
  if (plan === undefined || dtype !== 'float32') return undefined;
  return typeof plan === 'string' ? plan : plan[name];
}

/**
 * Replaces a model's float32 weights, in place, with what TF.js decodes from their form under
 * `plan`: after this, the model computes exactly what a worker that loads the quantized stage
 * artifacts computes (the master's degraded mode and warm-up reference rely on it).
 * Re-quantizing the rounded values gives the same codes, so shipped blobs do not change; a
 * model loaded from artifacts stored in the form `plan` gives keeps its weights bit for bit.
 */
export function roundModelWeights(model: tf.LayersModel, plan: WeightQuantizationPlan): void {
  for (const layer of model.layers) {
    const weights = layer.weights;
    const forms = weights.map((w) => plannedQuantization(plan, w.originalName, w.dtype));
    if (forms.every((form) => form === undefined)) continue;
    const values = layer.getWeights(); // the variables themselves: not to be disposed
    const rounded = values.map((tensor, i) => {
      const form = forms[i];
      if (form === undefined) return tensor;
      const { bytes, quantization } = quantizeWeight(
        tensor.dataSync() as Float32Array,
        form,
        weights[i]?.originalName,
      );
      const copy = bytes.slice().buffer;
      const decoded = tfio.decodeWeights(copy, [
        { name: 'w', shape: tensor.shape, dtype: 'float32', quantization },
      ]);
      return decoded.w as tf.Tensor;
    });
    layer.setWeights(rounded);
    for (const [i, t] of rounded.entries()) if (t !== values[i]) t.dispose();
  }
}
