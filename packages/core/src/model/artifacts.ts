/**
 * Validation of TF.js `model.json` documents and their weight bytes, shared by the file
 * system and HTTP loaders.
 *
 * @module
 */

import * as tf from '@tensorflow/tfjs';
import { platform } from '#platform';
import { DinferError, DinferErrorCode } from '../errors.js';
import { corrupt } from './model-errors.js';

/** Options shared by the artifact readers. */
export interface ReadModelOptions {
  /** Aborts reading; the promise rejects with an ABORTED DinferError. */
  signal?: AbortSignal | undefined;
  /** Upper bound on `model.json` plus all weight bytes; larger models are refused before reading. */
  maxBytes?: number | undefined;
}

/** A `model.json` that passed {@link parseModelJson}. */
export interface CheckedModelJson extends tf.io.ModelJSON {
  readonly weightsManifest: tf.io.WeightsManifestConfig;
}

const elementBytes: Record<string, number> = {
  float32: 4,
  int32: 4,
  bool: 1,
  complex64: 8,
  uint8: 1,
  uint16: 2,
  float16: 2,
  int8: 1,
  int16: 2,
};

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The Keras class name of a layers-model topology, or `undefined` when there is none. */
function kerasClassName(topology: Record<string, unknown>): string | undefined {
  const config = isRecord(topology.model_config) ? topology.model_config : topology;
  return typeof config.class_name === 'string' ? config.class_name : undefined;
}

/**
 * Parses and checks a `model.json` text: JSON, a Keras `modelTopology` (a graph model is
 * MODEL_UNSUPPORTED), and a well-formed `weightsManifest` with relative shard paths.
 *
 * @param path Where the text came from, for messages and `details.path`.
 */
export function parseModelJson(text: string, path: string): CheckedModelJson {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw corrupt(path, `model.json is not valid JSON (${(error as Error).message})`, {}, error);
  }
  if (!isRecord(json)) throw corrupt(path, 'model.json is not a JSON object');
  const format = json.format;
  if (format === 'graph-model') {
    throw new DinferError(
      DinferErrorCode.MODEL_UNSUPPORTED,
      `${path}: this is a TF.js graph model; dinfer partitions layers models (format "layers-model") only`,
      { details: { path, format } },
    );
  }
  const topology = json.modelTopology;
  if (!isRecord(topology)) throw corrupt(path, 'model.json has no modelTopology object');
  if (kerasClassName(topology) === undefined) {
    throw new DinferError(
      DinferErrorCode.MODEL_UNSUPPORTED,
      `${path}: modelTopology has no Keras class_name (a graph model?); dinfer supports layers models only`,
      { details: { path, format } },
    );
  }
  const manifest = json.weightsManifest;
  if (!Array.isArray(manifest)) throw corrupt(path, 'model.json has no weightsManifest array');
  manifest.forEach((group, g) => {
    if (!isRecord(group) || !Array.isArray(group.paths) || !Array.isArray(group.weights)) {
      throw corrupt(path, `weightsManifest[${g}] needs "paths" and "weights" arrays`, { group: g });
    }
    for (const p of group.paths) {
      if (typeof p !== 'string' || p.length === 0)
        throw corrupt(path, `weightsManifest[${g}] has a non-string path`);
      if (
        p.startsWith('/') ||
        p.includes('\\') ||
        p.split('/').includes('..') ||
        /^[a-z][a-z0-9+.-]*:/i.test(p)
      ) {
        throw corrupt(path, `weight path "${p}" must be relative and stay beside model.json`, {
          weightPath: p,
        });
      }
    }
    group.weights.forEach((w: unknown, i: number) => {
      if (
        !isRecord(w) ||
        typeof w.name !== 'string' ||
        !Array.isArray(w.shape) ||
        !w.shape.every((d) => Number.isInteger(d) && (d as number) >= 0) ||
        typeof w.dtype !== 'string'
      ) {
        throw corrupt(
          path,
          `weightsManifest[${g}].weights[${i}] needs name, shape (non-negative integers) and dtype`,
          {
            group: g,
            weight: i,
          },
        );
      }
    });
  });
  return json as unknown as CheckedModelJson;
}

/** Bytes a weight entry occupies in the shards, or `undefined` when not fixed (strings). */
export function weightEntryBytes(entry: tf.io.WeightsManifestEntry): number | undefined {
  const dtype = entry.quantization?.dtype ?? entry.dtype;
  const size = elementBytes[dtype];
  if (size === undefined) return undefined;
  return entry.shape.reduce((a, b) => a * b, 1) * size;
}

/**
 * Checks that each weight group's shards hold exactly the bytes its entries declare.
 *
 * @param groupBytes Bytes actually read per group of `json.weightsManifest`.
 */
export function checkWeightBytes(json: CheckedModelJson, groupBytes: readonly number[], path: string): void {
  json.weightsManifest.forEach((group, g) => {
    let expected = 0;
    for (const entry of group.weights) {
      const bytes = weightEntryBytes(entry);
      if (bytes === undefined) return; // variable-size (string) weights: cannot check here
      expected += bytes;
    }
    const actual = groupBytes[g] ?? 0;
    if (actual !== expected) {
      throw corrupt(
        path,
        `weight group ${g} (${group.paths.join(', ')}) holds ${actual} bytes but its ${group.weights.length} weights need ${expected}`,
        { group: g, expectedBytes: expected, actualBytes: actual },
      );
    }
  });
}

/** Total bytes of the fixed-size weights a manifest declares. */
export function declaredWeightBytes(json: CheckedModelJson): number {
  return json.weightsManifest.reduce(
    (sum, group) => sum + group.weights.reduce((s, w) => s + (weightEntryBytes(w) ?? 0), 0),
    0,
  );
}

/** Joins weight data (one buffer or several) into one ArrayBuffer. */
export function joinWeightData(data: tf.io.WeightData | undefined): ArrayBuffer {
  if (data === undefined) return new ArrayBuffer(0);
  return tf.io.CompositeArrayBuffer.join(data);
}

/** Hex SHA-256 of weight data, in manifest order. */
export function sha256Hex(data: tf.io.WeightData | Uint8Array | undefined): string {
  if (data instanceof Uint8Array) return platform.sha256Hex([data]);
  if (Array.isArray(data)) return platform.sha256Hex(data.map((part) => new Uint8Array(part)));
  return platform.sha256Hex(data === undefined ? [] : [new Uint8Array(data)]);
}

/** Builds ModelArtifacts from a checked `model.json` and its (already read) weight bytes. */
export async function artifactsFromJson(
  json: CheckedModelJson,
  weightData: ArrayBuffer,
): Promise<tf.io.ModelArtifacts> {
  const specs = json.weightsManifest.flatMap((group) => group.weights);
  return tf.io.getModelArtifactsForJSON(json, async () => [specs, weightData]);
}

/** Throws an ABORTED DinferError when the signal is aborted. */
export function throwIfAborted(signal: AbortSignal | undefined, path: string): void {
  if (signal?.aborted) {
    throw new DinferError(DinferErrorCode.ABORTED, `reading ${path} was aborted`, {
      details: { path },
      cause: signal.reason,
    });
  }
}

/** Throws MODEL_IO when `bytes` exceeds the optional limit. */
export function checkMaxBytes(bytes: number, maxBytes: number | undefined, path: string): void {
  if (maxBytes !== undefined && bytes > maxBytes) {
    throw new DinferError(
      DinferErrorCode.MODEL_IO,
      `${path}: model is ${bytes} bytes, over the limit of ${maxBytes}`,
      {
        details: { path, bytes, maxBytes },
      },
    );
  }
}
