/**
 * How the artifacts a model came from stored its weights. TF.js artifacts may store a float32
 * weight quantized (`weightsManifest[].weights[].quantization`: `float16`, or affine `uint8` /
 * `uint16` with `scale` and `min`, as `tensorflowjs_converter --quantize_*` writes); TF.js
 * dequantizes on load, so the built model no longer says so. core's loaders
 * (`loadLayersModel`, `modelFromArtifacts`) remember it for each model they build,
 * keyed by weight name, so that a deployment ships those weights in the form they came in
 * rather than as float32.
 *
 * @module
 */
import type * as tf from '@tensorflow/tfjs';
import { DinferError, DinferErrorCode } from '../errors.js';

/** A weight's stored form: the `quantization` field of its weights-manifest entry. */
export type StoredQuantization = NonNullable<tf.io.WeightsManifestEntry['quantization']>;

/** The stored form of each quantized weight, keyed by weight name (unquantized ones absent). */
export type WeightQuantizationByName = Readonly<Record<string, StoredQuantization>>;

const remembered = new WeakMap<tf.LayersModel, WeightQuantizationByName>();

/** The quantized entries of a weights manifest (e.g. `artifacts.weightSpecs`), by weight name. */
export function manifestWeightQuantization(
  entries: readonly tf.io.WeightsManifestEntry[],
): WeightQuantizationByName {
  const byName: Record<string, StoredQuantization> = {};
  for (const entry of entries) if (entry.quantization) byName[entry.name] = { ...entry.quantization };
  return byName;
}

/** Records how the artifacts `model` was built from stored its weights. @internal */
export function rememberWeightQuantization(model: tf.LayersModel, byName: WeightQuantizationByName): void {
  remembered.set(model, byName);
}

/**
 * How the artifacts `model` was loaded from by core's loaders stored its weights; empty for
 * a model built in memory, loaded with float32 weights, or loaded by other means.
 */
export function sourceWeightQuantization(model: tf.LayersModel): WeightQuantizationByName {
  return remembered.get(model) ?? {};
}

const isFiniteNumber = (value: unknown): value is number =>
  typeof value === 'number' && Number.isFinite(value);

/**
 * Checks a {@link WeightQuantizationByName} given for `model`: every name is one of its
 * weights and every entry a form TF.js decodes (`float16`, or `uint8`/`uint16` with finite
 * `scale` and `min`).
 *
 * @throws DinferError INVALID_ARGUMENT naming the first bad entry.
 */
export function checkWeightQuantization(model: tf.LayersModel, byName: WeightQuantizationByName): void {
  const names = new Set(model.weights.map((w) => w.originalName));
  for (const [name, quantization] of Object.entries(byName)) {
    const bad = (why: string) =>
      new DinferError(DinferErrorCode.INVALID_ARGUMENT, `weight quantization of "${name}": ${why}`, {
        details: { weight: name, quantization },
      });
    if (!names.has(name)) throw bad(`model "${model.name}" has no such weight`);
    const dtype = (quantization as { dtype?: unknown } | null)?.dtype;
    if (dtype === 'float16') continue;
    if (dtype !== 'uint8' && dtype !== 'uint16') throw bad('dtype must be float16, uint8 or uint16');
    if (!isFiniteNumber(quantization.scale) || !isFiniteNumber(quantization.min)) {
      throw bad(`${dtype} needs a finite scale and min`);
    }
  }
}
