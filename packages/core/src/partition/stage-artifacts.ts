/**
 * A stage model as content-addressed blobs for shipping to workers: its `model.json` (standard
 * TF.js layers-model format) and ONE BLOB PER WEIGHT TENSOR, each named by its SHA-256.
 *
 * The `weightsManifest` has one group per tensor, in the model's weight order, whose single
 * path is `<sha256>.bin`: written to a directory beside `model.json` the blobs are standard
 * TF.js artifacts that plain `tf.loadLayersModel` reads. Two versions of a model that share
 * unchanged tensors share those blobs, so a worker holding them is sent nothing for them.
 * With {@link StageToBlobsOptions.quantization} float32 tensors are stored quantized in
 * TF.js's own format (see `weight-quantization.ts`): all of them in one form, or each in the
 * form its source artifacts used. The same model always gives the same
 * bytes, so the names are stable across runs and a worker's cache stays valid.
 *
 * @module
 */

import type * as tf from '@tensorflow/tfjs';
import { platform } from '#platform';
import { DinferError, DinferErrorCode } from '../errors.js';
import { joinWeightData, parseModelJson, weightEntryBytes } from '../model/artifacts.js';
import { modelToArtifacts } from '../model/io.js';
import { modelFromWeightGroups, type WeightGroupReader } from '../model/model-from-weights.js';
import { type BlobSource, heldBlob } from '../ship/blob-source.js';
import { plannedQuantization, quantizeWeight, type WeightQuantizationPlan } from './weight-quantization.js';

/** One weight tensor of a stage as a blob. */
export interface TensorBlob extends BlobSource {
  /** The weight's name in the manifest (e.g. `conv1_conv/kernel`). */
  readonly name: string;
  /** The weight's manifest entry (name, shape, dtype, optional `quantization`). */
  readonly entry: tf.io.WeightsManifestEntry;
}

/** A {@link TensorBlob} whose bytes are held in memory. */
export interface HeldTensorBlob extends TensorBlob {
  /** The stored bytes: raw little-endian values, or quantized ones when `entry.quantization` says so. */
  readonly bytes: Uint8Array;
}

/** A stage serialised for shipping. */
export interface StageBlobs {
  /** UTF-8 `model.json`: `modelTopology` plus a one-group-per-tensor `weightsManifest`. */
  readonly topology: Uint8Array;
  readonly topologySha256: string;
  /** The weight tensors, in manifest order. */
  readonly tensors: readonly TensorBlob[];
  /** Total bytes of the tensor blobs. */
  readonly weightBytes: number;
  /** Total bytes the weights take as float32 (unquantized), for ratios. */
  readonly rawWeightBytes: number;
}

/** {@link StageBlobs} whose tensors are held in memory (those of {@link stageToBlobs}). */
export interface HeldStageBlobs extends StageBlobs {
  /** The weight tensors, in manifest order, bytes and all. */
  readonly tensors: readonly HeldTensorBlob[];
}

/** Options for {@link stageToBlobs}. */
export interface StageToBlobsOptions {
  /**
   * Store float32 weights quantized (TF.js `quantization` format): every one as float16 or
   * affine uint8, or those a per-weight plan names in the form it gives. Default: float32.
   */
  readonly quantization?: WeightQuantizationPlan | undefined;
}

/** The path a stage's `model.json` gives the blob `sha256`. */
export function tensorBlobPath(sha256: string): string {
  return `${sha256}.bin`;
}

function sha256Of(bytes: Uint8Array): string {
  return platform.sha256Hex([bytes]);
}

/**
 * Serialises `model` into {@link StageBlobs}. The `model.json` holds only fields that depend
 * on the model (no save date), so equal models give byte-identical blobs.
 *
 * @throws DinferError MODEL_UNSUPPORTED for a model without a JSON topology or with
 *   variable-size (string) weights; INVALID_ARGUMENT when `uint8` meets a non-finite weight.
 */
export async function stageToBlobs(
  model: tf.LayersModel,
  options: StageToBlobsOptions = {},
): Promise<HeldStageBlobs> {
  const artifacts = await modelToArtifacts(model);
  if (artifacts.modelTopology === undefined || artifacts.modelTopology instanceof ArrayBuffer) {
    throw new DinferError(DinferErrorCode.MODEL_UNSUPPORTED, `model "${model.name}" has no JSON topology`);
  }
  const data = new Uint8Array(joinWeightData(artifacts.weightData));
  const tensors: HeldTensorBlob[] = [];
  let offset = 0;
  let rawWeightBytes = 0;
  for (const spec of artifacts.weightSpecs ?? []) {
    const size = weightEntryBytes(spec);
    if (size === undefined) {
      throw new DinferError(
        DinferErrorCode.MODEL_UNSUPPORTED,
        `model "${model.name}": weight ${spec.name} of dtype ${spec.dtype} has no fixed size`,
        { details: { weight: spec.name, dtype: spec.dtype } },
      );
    }
    const raw = data.subarray(offset, offset + size);
    offset += size;
    rawWeightBytes += size;
    let bytes: Uint8Array = raw;
    let entry: tf.io.WeightsManifestEntry = { name: spec.name, shape: spec.shape, dtype: spec.dtype };
    const form = plannedQuantization(options.quantization, spec.name, spec.dtype);
    if (form !== undefined) {
      const values = new Float32Array(raw.slice().buffer);
      const quantized = quantizeWeight(values, form, spec.name);
      bytes = quantized.bytes;
      entry = { ...entry, quantization: quantized.quantization };
    }
    tensors.push({ name: spec.name, entry, ...heldBlob(bytes) });
  }
  const json: Omit<tf.io.ModelJSON, 'weightsManifest'> = {
    format: artifacts.format ?? 'layers-model',
    generatedBy: artifacts.generatedBy ?? 'dinfer',
    convertedBy: artifacts.convertedBy ?? null,
    modelTopology: artifacts.modelTopology,
    ...(artifacts.trainingConfig === undefined ? {} : { trainingConfig: artifacts.trainingConfig }),
  };
  return stageBlobsOf(json, tensors, rawWeightBytes);
}

/**
 * The {@link StageBlobs} of a stage `model.json` whose manifest is `tensors`, one per group,
 * in order (`json.weightsManifest` is replaced by that manifest).
 */
export function stageBlobsOf<T extends TensorBlob>(
  json: Omit<tf.io.ModelJSON, 'weightsManifest'>,
  tensors: readonly T[],
  rawWeightBytes: number,
): StageBlobs & { readonly tensors: readonly T[] } {
  const manifest = tensors.map((t) => ({ paths: [tensorBlobPath(t.sha256)], weights: [t.entry] }));
  const topology = new TextEncoder().encode(JSON.stringify({ ...json, weightsManifest: manifest }));
  return {
    topology,
    topologySha256: sha256Of(topology),
    tensors,
    weightBytes: tensors.reduce((sum, t) => sum + t.byteLength, 0),
    rawWeightBytes,
  };
}

function decodeTopology(topology: Uint8Array, name: string): ReturnType<typeof parseModelJson> {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(topology);
  } catch (error) {
    throw new DinferError(DinferErrorCode.MODEL_CORRUPT, `${name}: model.json is not UTF-8`, {
      details: { path: name },
      cause: error,
    });
  }
  return parseModelJson(text, name);
}

/**
 * The tensor blob names a stage's `model.json` refers to, in manifest order (one per group,
 * from the `<sha256>.bin` paths).
 *
 * @throws DinferError MODEL_CORRUPT when the `model.json` is not a stage's (a group with other
 *   than one path and one weight, or a path that is not `<sha256>.bin`).
 */
export function stageTensorHashes(topology: Uint8Array, name = '<stage>'): string[] {
  const json = decodeTopology(topology, name);
  return json.weightsManifest.map((group, g) => {
    const path = group.paths[0];
    const match =
      group.paths.length === 1 && group.weights.length === 1
        ? /^([0-9a-f]{64})\.bin$/.exec(path ?? '')
        : null;
    if (!match) {
      throw new DinferError(
        DinferErrorCode.MODEL_CORRUPT,
        `${name}: weight group ${g} of a stage needs one weight and one <sha256>.bin path`,
        { details: { path: name, group: g } },
      );
    }
    return match[1]!;
  });
}

/**
 * Builds a LayersModel from the blobs of {@link stageToBlobs}: the `model.json` and the tensor
 * blobs in manifest order, all of them concatenated into one buffer, or a reader that gives
 * one group's blob at a time. The weights are set one tensor at a time
 * (`modelFromWeightGroups`), so the backend holds the weights plus one tensor, and with a
 * reader only one blob is read at a time. Quantized weights are dequantized by TF.js as it
 * loads them.
 *
 * @param name Names the stage in messages and `details.path`.
 * @throws DinferError MODEL_CORRUPT when the `model.json` does not parse, or the blobs do not
 *   hold the bytes its weights need; MODEL_UNSUPPORTED for graph models and unknown layer classes.
 */
export async function modelFromBlobs(
  topology: Uint8Array,
  weights: Uint8Array | readonly Uint8Array[] | WeightGroupReader,
  name = '<stage>',
): Promise<tf.LayersModel> {
  const json = decodeTopology(topology, name);
  const groupBytes = json.weightsManifest.map((group) =>
    group.weights.reduce((sum, w) => sum + (weightEntryBytes(w) ?? 0), 0),
  );
  let readGroup: WeightGroupReader;
  if (typeof weights === 'function') {
    readGroup = weights;
  } else if (weights instanceof Uint8Array) {
    const declared = groupBytes.reduce((a, b) => a + b, 0);
    if (declared !== weights.byteLength) {
      throw new DinferError(
        DinferErrorCode.MODEL_CORRUPT,
        `${name}: the weights need ${declared} bytes, ${weights.byteLength} came with them`,
        { details: { path: name, expectedBytes: declared, actualBytes: weights.byteLength } },
      );
    }
    const starts = groupBytes.map((_, g) => groupBytes.slice(0, g).reduce((a, b) => a + b, 0));
    readGroup = async (g) => weights.subarray(starts[g]!, starts[g]! + groupBytes[g]!);
  } else {
    if (weights.length !== json.weightsManifest.length) {
      throw new DinferError(
        DinferErrorCode.MODEL_CORRUPT,
        `${name}: model.json has ${json.weightsManifest.length} weight groups, ${weights.length} blobs came with them`,
        { details: { path: name, groups: json.weightsManifest.length, blobs: weights.length } },
      );
    }
    readGroup = async (g) => weights[g]!;
  }
  return modelFromWeightGroups(json, readGroup, name);
}
