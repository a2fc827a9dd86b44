/**
 * The on-disk form of a partition: `manifest.json` plus one standard TF.js model per stage.
 *
 * ```
 * dir/manifest.json
 * dir/stage-0/model.json, dir/stage-0/group1-shard1of1.bin, ...
 * dir/stage-1/...
 * ```
 *
 * `manifest.json` (format `dinfer-partition/1`):
 * ```json
 * { "format": "dinfer-partition/1",
 *   "model": { "name": "resnet50",
 *              "inputs": [{ "name": "input_1", "shape": [null, 224, 224, 3], "dtype": "float32" }],
 *              "outputs": [...] },
 *   "stages": [{ "index": 0, "layers": [0, 57], "path": "stage-0/model.json",
 *                "inputs": ["input_1"], "outputs": ["conv3_block4_out/0:0"],
 *                "weightBytes": 123, "sha256": "<hex sha256 of the stage's weight bytes>" }] }
 * ```
 * `layers` is the half-open range `[start, end)` of the original `model.layers`; `inputs` and
 * `outputs` are tensor names (see tensor-names.ts) in the stage model's own order; `sha256`
 * covers the stage's weight bytes in manifest order (its shards concatenated).
 *
 * @module
 */
import type * as tf from '@tensorflow/tfjs';
import { DinferError, DinferErrorCode } from '../errors.js';
import { joinWeightData, type ReadModelOptions, sha256Hex } from '../model/artifacts.js';
import { requireFileAccess } from '../model/file-access.js';
import { readArtifactsFromFile } from '../model/fs-handler.js';
import { modelFromArtifacts, saveLayersModel } from '../model/io.js';
import type { DType, TensorSpec } from '../model/types.js';
import type { Partition, PartitionStage } from './partition.js';

/** The manifest format identifier. */
export const PARTITION_FORMAT = 'dinfer-partition/1';

/** File name of the manifest inside a partition directory. */
export const MANIFEST_FILE = 'manifest.json';

/** One stage entry of a {@link PartitionManifest}. */
export interface PartitionManifestStage {
  readonly index: number;
  /** `[start, end)` indices into the original model's layers. */
  readonly layers: readonly [start: number, end: number];
  /** Path of the stage's `model.json`, relative to the manifest. */
  readonly path: string;
  /** Tensor names the stage reads, in its model's input order. */
  readonly inputs: readonly string[];
  /** Tensor names the stage emits, in its model's output order. */
  readonly outputs: readonly string[];
  /** Bytes of the stage's weights. */
  readonly weightBytes: number;
  /** Hex SHA-256 of the stage's weight bytes in manifest order. */
  readonly sha256: string;
}

/** The contents of `manifest.json`. */
export interface PartitionManifest {
  readonly format: typeof PARTITION_FORMAT;
  readonly model: {
    readonly name: string;
    readonly inputs: readonly TensorSpec[];
    readonly outputs: readonly TensorSpec[];
  };
  readonly stages: readonly PartitionManifestStage[];
}

/** A partition read back from disk. It runs with `runPartition` like a fresh one. */
export interface LoadedPartition {
  readonly manifest: PartitionManifest;
  /** The original model's inputs. */
  readonly inputs: readonly TensorSpec[];
  /** The original model's outputs. */
  readonly outputs: readonly TensorSpec[];
  /** Cut indices implied by the stages' layer ranges. */
  readonly cuts: readonly number[];
  readonly stages: readonly PartitionStage[];
}

const dtypes: readonly DType[] = ['float32', 'int32', 'bool', 'complex64', 'string'];

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isNonNegativeInt(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0;
}

/**
 * Validates a parsed `manifest.json`.
 *
 * @param path Where it came from, for messages and `details.path`.
 * @throws DinferError MODEL_CORRUPT naming the first bad field.
 */
export function parsePartitionManifest(value: unknown, path: string): PartitionManifest {
  const bad = (field: string, why: string): DinferError =>
    new DinferError(DinferErrorCode.MODEL_CORRUPT, `${path}: invalid partition manifest: ${field} ${why}`, {
      details: { path, field },
    });
  if (!isRecord(value)) throw bad('(root)', 'must be a JSON object');
  if (value.format !== PARTITION_FORMAT)
    throw bad('format', `must be "${PARTITION_FORMAT}" (got ${JSON.stringify(value.format)})`);
  const model = value.model;
  if (!isRecord(model)) throw bad('model', 'must be an object');
  if (typeof model.name !== 'string') throw bad('model.name', 'must be a string');
  const specs = (field: string, list: unknown): TensorSpec[] => {
    if (!Array.isArray(list) || list.length === 0) throw bad(field, 'must be a non-empty array');
    return list.map((spec, i) => {
      const where = `${field}[${i}]`;
      if (!isRecord(spec)) throw bad(where, 'must be an object');
      if (typeof spec.name !== 'string' || spec.name.length === 0)
        throw bad(`${where}.name`, 'must be a non-empty string');
      if (!Array.isArray(spec.shape) || !spec.shape.every((d) => d === null || isNonNegativeInt(d))) {
        throw bad(`${where}.shape`, 'must be an array of non-negative integers or null');
      }
      if (!dtypes.includes(spec.dtype as DType))
        throw bad(`${where}.dtype`, `must be one of ${dtypes.join(', ')}`);
      return { name: spec.name, shape: spec.shape as (number | null)[], dtype: spec.dtype as DType };
    });
  };
  const inputs = specs('model.inputs', model.inputs);
  const outputs = specs('model.outputs', model.outputs);
  if (!Array.isArray(value.stages) || value.stages.length === 0)
    throw bad('stages', 'must be a non-empty array');
  const available = new Set(inputs.map((s) => s.name));
  let previousEnd = 0;
  const stages = value.stages.map((stage: unknown, i: number): PartitionManifestStage => {
    const where = `stages[${i}]`;
    if (!isRecord(stage)) throw bad(where, 'must be an object');
    if (stage.index !== i) throw bad(`${where}.index`, `must be ${i}`);
    const layers = stage.layers;
    if (!Array.isArray(layers) || layers.length !== 2 || !layers.every(isNonNegativeInt)) {
      throw bad(`${where}.layers`, 'must be [start, end] with non-negative integers');
    }
    const [start, end] = layers as [number, number];
    if (start !== previousEnd || end <= start) {
      throw bad(`${where}.layers`, `must start at ${previousEnd} and end after it (got [${start}, ${end}])`);
    }
    previousEnd = end;
    const stagePath = stage.path;
    if (
      typeof stagePath !== 'string' ||
      stagePath.length === 0 ||
      stagePath.startsWith('/') ||
      stagePath.includes('\\') ||
      stagePath.split('/').includes('..')
    ) {
      throw bad(`${where}.path`, 'must be a relative path inside the partition directory');
    }
    const names = (field: string, list: unknown): string[] => {
      if (
        !Array.isArray(list) ||
        list.length === 0 ||
        !list.every((n) => typeof n === 'string' && n.length > 0)
      ) {
        throw bad(`${where}.${field}`, 'must be a non-empty array of tensor names');
      }
      return list as string[];
    };
    const stageInputs = names('inputs', stage.inputs);
    const stageOutputs = names('outputs', stage.outputs);
    for (const name of stageInputs) {
      if (!available.has(name))
        throw bad(`${where}.inputs`, `reads "${name}", which no model input or earlier stage provides`);
    }
    for (const name of stageOutputs) available.add(name);
    if (!isNonNegativeInt(stage.weightBytes))
      throw bad(`${where}.weightBytes`, 'must be a non-negative integer');
    if (typeof stage.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(stage.sha256)) {
      throw bad(`${where}.sha256`, 'must be 64 lowercase hex digits');
    }
    return {
      index: i,
      layers: [start, end],
      path: stagePath,
      inputs: stageInputs,
      outputs: stageOutputs,
      weightBytes: stage.weightBytes,
      sha256: stage.sha256,
    };
  });
  const last = stages[stages.length - 1]!;
  for (const output of outputs) {
    if (!last.outputs.includes(output.name)) {
      throw bad('model.outputs', `names "${output.name}", which the last stage does not emit`);
    }
  }
  return { format: PARTITION_FORMAT, model: { name: model.name, inputs, outputs }, stages };
}

/** Resolves a partition directory or a `manifest.json` path to the manifest's path. */
function manifestPathOf(source: string): string {
  const files = requireFileAccess(source);
  const path = files.resolve(source);
  return path.endsWith('.json') ? path : files.join(path, MANIFEST_FILE);
}

/**
 * Reads and validates `manifest.json` from a partition directory (or the manifest's path).
 *
 * @throws DinferError MODEL_NOT_FOUND, MODEL_CORRUPT, MODEL_IO.
 */
export async function readPartitionManifest(source: string): Promise<PartitionManifest> {
  const path = manifestPathOf(source);
  let text: string;
  try {
    text = await requireFileAccess(path).readText(path);
  } catch (error) {
    const code = (error as { code?: unknown } | undefined)?.code;
    throw new DinferError(
      code === 'ENOENT' || code === 'ENOTDIR' ? DinferErrorCode.MODEL_NOT_FOUND : DinferErrorCode.MODEL_IO,
      code === 'ENOENT' || code === 'ENOTDIR'
        ? `partition manifest not found: ${path}`
        : `reading ${path} failed: ${(error as Error).message}`,
      { details: { path }, cause: error },
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new DinferError(DinferErrorCode.MODEL_CORRUPT, `${path}: manifest is not valid JSON`, {
      details: { path },
      cause: error,
    });
  }
  return parsePartitionManifest(json, path);
}

/**
 * Writes a partition to `dir`: each stage as standard TF.js artifacts in `stage-<i>/`, then
 * `manifest.json` (written last, through a rename, so a reader never sees a manifest whose
 * stages are incomplete). Returns the manifest.
 *
 * @throws DinferError MODEL_IO when writing fails.
 */
export async function savePartition(partition: Partition, dir: string): Promise<PartitionManifest> {
  const files = requireFileAccess(dir);
  const root = files.resolve(dir);
  const stages: PartitionManifestStage[] = [];
  for (const stage of partition.stages) {
    const relative = `stage-${stage.index}/model.json`;
    const saved = await saveLayersModel(stage.model, files.join(root, `stage-${stage.index}`));
    stages.push({
      index: stage.index,
      layers: [stage.layers[0], stage.layers[1]],
      path: relative,
      inputs: stage.inputs.map((s) => s.name),
      outputs: stage.outputs.map((s) => s.name),
      weightBytes: saved.weightBytes,
      sha256: saved.weightsSha256,
    });
  }
  const manifest: PartitionManifest = {
    format: PARTITION_FORMAT,
    model: { name: partition.analysis.name, inputs: partition.inputs, outputs: partition.outputs },
    stages,
  };
  const path = files.join(root, MANIFEST_FILE);
  try {
    await files.makeDirectory(root);
    await files.writeAtomically(path, `${JSON.stringify(manifest, null, 2)}\n`);
  } catch (error) {
    throw new DinferError(DinferErrorCode.MODEL_IO, `writing ${path} failed: ${(error as Error).message}`, {
      details: { path },
      cause: error,
    });
  }
  return manifest;
}

function specsFor(
  names: readonly string[],
  symbolic: readonly tf.SymbolicTensor[],
  where: string,
): TensorSpec[] {
  if (names.length !== symbolic.length) {
    throw new DinferError(
      DinferErrorCode.MODEL_CORRUPT,
      `${where}: the manifest lists ${names.length} tensors but the stage model has ${symbolic.length}`,
      { details: { path: where, expected: names.length, actual: symbolic.length } },
    );
  }
  return names.map((name, i) => ({
    name,
    shape: [...symbolic[i]!.shape],
    dtype: symbolic[i]!.dtype as DType,
  }));
}

/**
 * Loads one stage of a partition: reads its artifacts, checks their SHA-256 against the
 * manifest and builds the model.
 *
 * @param dir The partition directory (the manifest's directory).
 * @throws DinferError HASH_MISMATCH when the weight bytes differ from the manifest's hash;
 *   MODEL_NOT_FOUND, MODEL_CORRUPT, MODEL_IO as for {@link readModelArtifacts}.
 */
export async function loadPartitionStage(
  dir: string,
  manifest: PartitionManifest,
  index: number,
  options: ReadModelOptions = {},
): Promise<PartitionStage> {
  const entry = manifest.stages[index];
  if (!entry) {
    throw new DinferError(DinferErrorCode.INVALID_ARGUMENT, `the partition has no stage ${index}`, {
      details: { stage: index, stages: manifest.stages.length },
    });
  }
  const files = requireFileAccess(dir);
  const path = files.join(files.dirname(manifestPathOf(dir)), entry.path);
  const artifacts = await readArtifactsFromFile(path, options);
  const hash = sha256Hex(new Uint8Array(joinWeightData(artifacts.weightData)));
  if (hash !== entry.sha256) {
    throw new DinferError(
      DinferErrorCode.HASH_MISMATCH,
      `${path}: weight bytes hash to ${hash}, the manifest expects ${entry.sha256}`,
      { details: { path, stage: index, expected: entry.sha256, actual: hash } },
    );
  }
  const model = await modelFromArtifacts(artifacts, path);
  return {
    index,
    layers: [entry.layers[0], entry.layers[1]],
    model,
    inputs: specsFor(entry.inputs, model.inputs, path),
    outputs: specsFor(entry.outputs, model.outputs, path),
    weightBytes: entry.weightBytes,
  };
}

/**
 * Loads a partition saved by {@link savePartition}: validates the manifest, checks every
 * stage's weight hash and builds every stage model.
 *
 * @throws DinferError MODEL_NOT_FOUND, MODEL_CORRUPT, HASH_MISMATCH, MODEL_IO.
 */
export async function loadPartition(dir: string, options: ReadModelOptions = {}): Promise<LoadedPartition> {
  const manifest = await readPartitionManifest(dir);
  const stages: PartitionStage[] = [];
  for (let i = 0; i < manifest.stages.length; i++)
    stages.push(await loadPartitionStage(dir, manifest, i, options));
  return {
    manifest,
    inputs: manifest.model.inputs,
    outputs: manifest.model.outputs,
    cuts: manifest.stages.slice(1).map((s) => s.layers[0]),
    stages,
  };
}
