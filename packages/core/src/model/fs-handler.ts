/**
 * Reads and writes standard TF.js layers-model artifacts on the local file system (the
 * platform's file access: `node:fs` in Node, no tfjs-node needed; a runtime without a file
 * system gets MODEL_UNSUPPORTED): `model.json` plus `group1-shard<i>of<n>.bin` weight shards
 * of at most 4 MiB, the layout the TF.js converter writes and every TF.js loader reads.
 *
 * @module
 */
import type * as tf from '@tensorflow/tfjs';
import { DinferError, DinferErrorCode } from '../errors.js';
import {
  artifactsFromJson,
  checkMaxBytes,
  checkWeightBytes,
  joinWeightData,
  parseModelJson,
  type ReadModelOptions,
  sha256Hex,
  throwIfAborted,
} from './artifacts.js';
import { requireFileAccess, utf8Bytes } from './file-access.js';
import { ioError } from './model-errors.js';

/** Shard size of written weights, as the TF.js converter uses. */
export const WEIGHT_SHARD_BYTES = 4 * 1024 * 1024;

/** What {@link writeModelArtifacts} wrote. */
export interface WrittenArtifacts {
  /** Absolute path of the written `model.json`. */
  readonly modelJsonPath: string;
  /** Total bytes of the weight shards. */
  readonly weightBytes: number;
  /** Hex SHA-256 of the weight bytes in manifest order. */
  readonly weightsSha256: string;
  /** Shard file names, in order. */
  readonly shards: readonly string[];
}

/** Resolves a path, a `file://` URL, or a directory (which means `<dir>/model.json`). */
export async function resolveModelJsonPath(source: string): Promise<string> {
  const files = requireFileAccess(source);
  const path = files.resolve(source);
  try {
    if ((await files.stat(path)).directory) return files.join(path, 'model.json');
  } catch (error) {
    throw ioError(path, 'reading', error);
  }
  return path;
}

/**
 * Reads `model.json` and its weight shards into ModelArtifacts, checking the JSON, the
 * topology kind and that each weight group's bytes match its declared shapes and dtypes.
 *
 * @throws DinferError MODEL_NOT_FOUND (with `details.path`) for a missing file,
 *   MODEL_CORRUPT for unparsable or inconsistent artifacts, MODEL_UNSUPPORTED for graph
 *   models, MODEL_IO for other I/O failures or a model over `maxBytes`, ABORTED.
 */
export async function readArtifactsFromFile(
  source: string,
  options: ReadModelOptions = {},
): Promise<tf.io.ModelArtifacts> {
  const { signal, maxBytes } = options;
  const fileAccess = requireFileAccess(source);
  const modelJsonPath = await resolveModelJsonPath(source);
  throwIfAborted(signal, modelJsonPath);
  let text: string;
  try {
    text = await fileAccess.readText(modelJsonPath, signal);
  } catch (error) {
    throw ioError(modelJsonPath, 'reading', error);
  }
  const json = parseModelJson(text, modelJsonPath);
  const dir = fileAccess.dirname(modelJsonPath);
  const files = json.weightsManifest.map((group) => group.paths.map((p) => fileAccess.join(dir, p)));
  let total = utf8Bytes(text);
  for (const file of files.flat()) {
    try {
      total += (await fileAccess.stat(file)).size;
    } catch (error) {
      throw ioError(file, 'reading', error);
    }
  }
  checkMaxBytes(total, maxBytes, modelJsonPath);
  const chunks: Uint8Array[] = [];
  const groupBytes: number[] = [];
  for (const group of files) {
    let bytes = 0;
    for (const file of group) {
      throwIfAborted(signal, file);
      try {
        const chunk = await fileAccess.readBytes(file, signal);
        chunks.push(chunk);
        bytes += chunk.byteLength;
      } catch (error) {
        throw ioError(file, 'reading', error);
      }
    }
    groupBytes.push(bytes);
  }
  checkWeightBytes(json, groupBytes, modelJsonPath);
  const weightData = new Uint8Array(groupBytes.reduce((a, b) => a + b, 0));
  let offset = 0;
  for (const chunk of chunks) {
    weightData.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return artifactsFromJson(json, weightData.buffer);
}

/**
 * Writes ModelArtifacts to `dir` as `model.json` plus `group1-shard<i>of<n>.bin`. Shards are
 * written first and `model.json` last (through a temporary file and a rename), so a reader
 * never sees a `model.json` whose shards are incomplete.
 */
export async function writeModelArtifacts(
  dir: string,
  artifacts: tf.io.ModelArtifacts,
): Promise<WrittenArtifacts> {
  const files = requireFileAccess(dir);
  const root = files.resolve(dir);
  const modelJsonPath = files.join(root, 'model.json');
  if (artifacts.modelTopology === undefined || artifacts.modelTopology instanceof ArrayBuffer) {
    throw new DinferError(DinferErrorCode.INVALID_ARGUMENT, 'only JSON model topologies can be written', {
      details: { path: modelJsonPath },
    });
  }
  const weights = new Uint8Array(joinWeightData(artifacts.weightData));
  const count = weights.byteLength === 0 ? 0 : Math.ceil(weights.byteLength / WEIGHT_SHARD_BYTES);
  const shards = Array.from({ length: count }, (_, i) => `group1-shard${i + 1}of${count}.bin`);
  try {
    await files.makeDirectory(root);
    for (let i = 0; i < count; i++) {
      const part = weights.subarray(
        i * WEIGHT_SHARD_BYTES,
        Math.min(weights.byteLength, (i + 1) * WEIGHT_SHARD_BYTES),
      );
      await files.writeBytes(files.join(root, shards[i]!), part);
    }
    const modelJson: tf.io.ModelJSON = {
      modelTopology: artifacts.modelTopology,
      format: artifacts.format ?? 'layers-model',
      generatedBy: artifacts.generatedBy ?? 'dinfer',
      convertedBy: artifacts.convertedBy ?? null,
      weightsManifest: [{ paths: shards, weights: artifacts.weightSpecs ?? [] }],
    };
    if (artifacts.trainingConfig !== undefined) modelJson.trainingConfig = artifacts.trainingConfig;
    if (artifacts.userDefinedMetadata !== undefined)
      modelJson.userDefinedMetadata = artifacts.userDefinedMetadata;
    if (artifacts.signature !== undefined) modelJson.signature = artifacts.signature;
    await files.writeAtomically(modelJsonPath, JSON.stringify(modelJson));
  } catch (error) {
    throw ioError(root, 'writing', error);
  }
  return { modelJsonPath, weightBytes: weights.byteLength, weightsSha256: sha256Hex(weights), shards };
}

/**
 * A TF.js IOHandler for the local file system, so plain TF.js reads and writes files:
 * `tf.loadLayersModel(fileSystemHandler('/m/model.json'))` and
 * `model.save(fileSystemHandler('/m'))`. `source` is a `model.json` path, a directory or a
 * `file://` URL for loading, and the target directory for saving.
 */
export function fileSystemHandler(source: string, options: ReadModelOptions = {}): tf.io.IOHandler {
  return {
    load: () => readArtifactsFromFile(source, options),
    save: async (artifacts) => {
      const files = requireFileAccess(source);
      const dir = files.resolve(source);
      const written = await writeModelArtifacts(dir.endsWith('.json') ? files.dirname(dir) : dir, artifacts);
      return {
        modelArtifactsInfo: {
          dateSaved: new Date(),
          modelTopologyType: 'JSON',
          modelTopologyBytes: JSON.stringify(artifacts.modelTopology).length,
          weightDataBytes: written.weightBytes,
        },
      };
    },
  };
}
