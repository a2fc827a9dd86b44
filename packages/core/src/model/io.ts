/**
 * Loading and saving LayersModels: local paths, `file://` URLs and `http(s)://` URLs in,
 * standard TF.js artifacts out.
 *
 * @module
 */
import * as tf from '@tensorflow/tfjs';
import { DinferError, DinferErrorCode } from '../errors.js';
import type { ReadModelOptions } from './artifacts.js';
import { readArtifactsFromFile, writeModelArtifacts } from './fs-handler.js';
import { isHttpSource, readArtifactsFromHttp } from './http-loader.js';
import { modelBuildError } from './model-errors.js';
import { manifestWeightQuantization, rememberWeightQuantization } from './source-quantization.js';

export type { ReadModelOptions } from './artifacts.js';

/** Options for {@link loadLayersModel}. */
export type LoadModelOptions = ReadModelOptions;

/** What {@link saveLayersModel} wrote. */
export interface SavedModel {
  /** Absolute path of `model.json`. */
  readonly modelJsonPath: string;
  /** Total bytes of the weight shards. */
  readonly weightBytes: number;
  /** Hex SHA-256 of the weight bytes, in manifest order. */
  readonly weightsSha256: string;
}

/**
 * Reads a model's artifacts (topology, weight specs and weight bytes) without building the
 * model. `source` is a `model.json` path, a directory holding one, a `file://` URL or an
 * `http(s)://` URL.
 *
 * @throws DinferError MODEL_NOT_FOUND, MODEL_CORRUPT, MODEL_UNSUPPORTED, MODEL_IO, ABORTED;
 *   messages and `details.path` name the file.
 */
export function readModelArtifacts(
  source: string,
  options: ReadModelOptions = {},
): Promise<tf.io.ModelArtifacts> {
  return isHttpSource(source)
    ? readArtifactsFromHttp(source, options)
    : readArtifactsFromFile(source, options);
}

/**
 * Builds a LayersModel from already-read artifacts, remembering how they stored its weights
 * (see `sourceWeightQuantization`).
 *
 * @param path Where the artifacts came from, for messages.
 * @throws DinferError MODEL_UNSUPPORTED for unknown layer classes, MODEL_CORRUPT when the
 *   topology or weights do not fit together.
 */
export async function modelFromArtifacts(
  artifacts: tf.io.ModelArtifacts,
  path = '<memory>',
): Promise<tf.LayersModel> {
  let model: tf.LayersModel;
  try {
    model = await tf.loadLayersModel({ load: async () => artifacts });
  } catch (error) {
    throw modelBuildError(path, error);
  }
  rememberWeightQuantization(model, manifestWeightQuantization(artifacts.weightSpecs ?? []));
  return model;
}

/**
 * Loads a TF.js LayersModel from a local `model.json` (weight shards beside it, read with
 * `node:fs`), a directory, a `file://` URL or an `http(s)://` URL (global `fetch`). Weights the
 * artifacts store quantized are dequantized to float32, and their stored form is remembered
 * (`sourceWeightQuantization`): a deployment ships them in it.
 *
 * @throws DinferError MODEL_NOT_FOUND for a missing file, MODEL_CORRUPT for unparsable JSON,
 *   a missing `modelTopology` or weight bytes that do not match the manifest,
 *   MODEL_UNSUPPORTED for a graph model, MODEL_IO for other I/O failures or a model over
 *   `maxBytes`, ABORTED. The message and `details.path` name the file.
 */
export async function loadLayersModel(
  source: string,
  options: LoadModelOptions = {},
): Promise<tf.LayersModel> {
  const artifacts = await readModelArtifacts(source, options);
  return modelFromArtifacts(artifacts, source);
}

/**
 * Serialises a model into ModelArtifacts in memory (topology, weight specs, weight bytes).
 */
export async function modelToArtifacts(model: tf.LayersModel): Promise<tf.io.ModelArtifacts> {
  let captured: tf.io.ModelArtifacts | undefined;
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      captured = artifacts;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  if (!captured)
    throw new DinferError(DinferErrorCode.INTERNAL, `model "${model.name}" produced no artifacts`);
  return captured;
}

/**
 * Saves a model to `dir` as standard TF.js artifacts: `model.json` plus
 * `group1-shard<i>of<n>.bin` (4 MiB shards), readable by plain `tf.loadLayersModel`.
 *
 * @throws DinferError MODEL_IO when writing fails.
 */
export async function saveLayersModel(model: tf.LayersModel, dir: string): Promise<SavedModel> {
  const written = await writeModelArtifacts(dir, await modelToArtifacts(model));
  return {
    modelJsonPath: written.modelJsonPath,
    weightBytes: written.weightBytes,
    weightsSha256: written.weightsSha256,
  };
}
