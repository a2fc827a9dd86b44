/**
 * A stage model as two blobs for shipping to workers: its `model.json` bytes (standard TF.js
 * layers-model format, one weight file) and its concatenated weight bytes. The same model
 * always gives the same bytes, so the blobs' SHA-256 names are stable across runs and a
 * worker's cache stays valid.
 *
 * @module
 */
import { createHash } from 'node:crypto';
import type * as tf from '@tensorflow/tfjs';
import { DinferError, DinferErrorCode } from '../errors.js';
import { artifactsFromJson, checkWeightBytes, joinWeightData, parseModelJson } from '../model/artifacts.js';
import { modelFromArtifacts, modelToArtifacts } from '../model/io.js';

/** The weight file name the stage's `model.json` refers to. */
export const STAGE_WEIGHTS_FILE = 'weights.bin';

/** A stage serialised for shipping: topology and weight bytes with their SHA-256. */
export interface StageBlobs {
  /** UTF-8 `model.json`: `modelTopology` plus a one-file `weightsManifest`. */
  readonly topology: Uint8Array;
  /** The weight bytes, in manifest order. */
  readonly weights: Uint8Array;
  readonly topologySha256: string;
  readonly weightsSha256: string;
}

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/**
 * Serialises `model` into {@link StageBlobs}. The `model.json` holds only fields that depend
 * on the model (no save date), so equal models give byte-identical blobs.
 */
export async function stageToBlobs(model: tf.LayersModel): Promise<StageBlobs> {
  const artifacts = await modelToArtifacts(model);
  if (artifacts.modelTopology === undefined || artifacts.modelTopology instanceof ArrayBuffer) {
    throw new DinferError(DinferErrorCode.MODEL_UNSUPPORTED, `model "${model.name}" has no JSON topology`);
  }
  const json: tf.io.ModelJSON = {
    format: artifacts.format ?? 'layers-model',
    generatedBy: artifacts.generatedBy ?? 'dinfer',
    convertedBy: artifacts.convertedBy ?? null,
    modelTopology: artifacts.modelTopology,
    ...(artifacts.trainingConfig === undefined ? {} : { trainingConfig: artifacts.trainingConfig }),
    weightsManifest: [{ paths: [STAGE_WEIGHTS_FILE], weights: artifacts.weightSpecs ?? [] }],
  };
  const topology = new TextEncoder().encode(JSON.stringify(json));
  const weights = new Uint8Array(joinWeightData(artifacts.weightData));
  return { topology, weights, topologySha256: sha256(topology), weightsSha256: sha256(weights) };
}

/**
 * Builds a LayersModel from the blobs of {@link stageToBlobs}.
 *
 * @param name Names the stage in messages and `details.path`.
 * @throws DinferError MODEL_CORRUPT when the `model.json` does not parse, has more than one
 *   weight group or its weights need other than `weights.byteLength` bytes;
 *   MODEL_UNSUPPORTED for graph models and unknown layer classes.
 */
export async function modelFromBlobs(
  topology: Uint8Array,
  weights: Uint8Array,
  name = '<stage>',
): Promise<tf.LayersModel> {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(topology);
  } catch (error) {
    throw new DinferError(DinferErrorCode.MODEL_CORRUPT, `${name}: model.json is not UTF-8`, {
      details: { path: name },
      cause: error,
    });
  }
  const json = parseModelJson(text, name);
  if (json.weightsManifest.length > 1) {
    throw new DinferError(
      DinferErrorCode.MODEL_CORRUPT,
      `${name}: a stage's model.json has one weight group, this one has ${json.weightsManifest.length}`,
      { details: { path: name, groups: json.weightsManifest.length } },
    );
  }
  if (json.weightsManifest.length === 0 && weights.byteLength > 0) {
    throw new DinferError(
      DinferErrorCode.MODEL_CORRUPT,
      `${name}: model.json declares no weights but ${weights.byteLength} weight bytes came with it`,
      { details: { path: name, expectedBytes: 0, actualBytes: weights.byteLength } },
    );
  }
  checkWeightBytes(json, [weights.byteLength], name);
  // Copy into an exact ArrayBuffer: TF.js slices weight values out of it by offset.
  const buffer = weights.slice().buffer;
  return modelFromArtifacts(await artifactsFromJson(json, buffer), name);
}
