/**
 * Turns a repository version into what the coordinator deploys: the model's artifacts (opened
 * without building the model or holding its weights, so a version larger than the master's
 * memory serves), checked for non-finite weights one tensor at a time; the weight
 * quantization its config asks for (shipped in TF.js's quantized format); its labels; and its
 * cuts (the version's `cuts`), or how to plan them (its `stages`, with per-layer times
 * profiled from the topology, one layer at a time) once the workers that will hold it have
 * joined, like `dinfer master --model`.
 *
 * @module
 */
import {
  analyzeModelJson,
  type DeploymentSpec,
  DinferError,
  DinferErrorCode,
  decodeStored,
  type ModelArtifactSource,
  openModelArtifacts,
  profileTopology,
} from '@dinfer/core';
import type * as tf from '@tensorflow/tfjs';
import { readLabels } from '../cluster/labels.js';
import type { RepositoryVersion } from './scan.js';

/** How versions without explicit `cuts` are planned. */
export interface VersionPlanning {
  /** Pipeline stages when the version's config does not say (`'auto'`: the planner chooses). Default 2. */
  readonly stages?: number | 'auto' | undefined;
  /** Profile layers on this machine (else FLOPs estimates). Default true. */
  readonly profile?: boolean | undefined;
  /** Receives progress messages. */
  readonly onStep?: ((step: string) => void) | undefined;
}

function nonFinite(values: ArrayLike<number>): number {
  let bad = 0;
  for (let i = 0; i < values.length; i++) if (!Number.isFinite(values[i]!)) bad++;
  return bad;
}

function nonFiniteError(label: string, weight: string, bad: number, total: number): DinferError {
  return new DinferError(
    DinferErrorCode.MODEL_CORRUPT,
    `${label}: weight ${weight} has ${bad} non-finite value(s) (NaN or Infinity) of ${total}`,
    { details: { weight, nonFinite: bad } },
  );
}

/**
 * Refuses a model with NaN or infinite weights before anything is shipped (the coordinator's
 * warm-up check sees only what reaches the outputs for one input).
 *
 * @throws DinferError MODEL_CORRUPT naming the first such weight and how many values are bad.
 */
export function checkFiniteWeights(model: tf.LayersModel, label: string): void {
  for (const layer of model.layers) {
    for (const weight of layer.weights) {
      if (weight.dtype !== 'float32') continue;
      const values = weight.read().dataSync() as Float32Array;
      const bad = nonFinite(values);
      if (bad > 0) throw nonFiniteError(label, weight.name, bad, values.length);
    }
  }
}

/**
 * {@link checkFiniteWeights} for a model's artifacts: reads (and dequantizes) one weight at a
 * time from the shard files.
 *
 * @throws DinferError MODEL_CORRUPT naming the first such weight; the source's read errors.
 */
export async function checkFiniteArtifactWeights(source: ModelArtifactSource, label: string): Promise<void> {
  for (const weight of source.weights) {
    if (weight.entry.dtype !== 'float32') continue;
    const values = decodeStored(await weight.read(), weight.entry.quantization);
    const bad = nonFinite(values);
    if (bad > 0) throw nonFiniteError(label, weight.entry.name, bad, values.length);
  }
}

/**
 * Opens `version` on disk and prepares its deployment (see the module documentation).
 *
 * @throws DinferError MODEL_CORRUPT (with the scan's reason) for an unavailable version or
 *   non-finite weights; the errors of `openModelArtifacts`, `readLabels` and
 *   `profileTopology` otherwise.
 */
export async function loadRepositoryVersion(
  version: RepositoryVersion,
  planning: VersionPlanning = {},
): Promise<DeploymentSpec> {
  const label = `${version.model}@${version.version}`;
  if (!version.available) {
    throw new DinferError(DinferErrorCode.MODEL_CORRUPT, `${label}: ${version.reason ?? 'unavailable'}`, {
      details: { path: version.dir },
    });
  }
  const step = planning.onStep ?? (() => {});
  step(`reading ${label} from ${version.modelJson}`);
  const source = await openModelArtifacts(version.modelJson);
  await checkFiniteArtifactWeights(source, label);
  const { config } = version;
  const labels = version.labelsFile ? await readLabels(version.labelsFile) : undefined;
  const cuts = config.cuts;
  let plan: DeploymentSpec['plan'];
  if (cuts === undefined) {
    const stages = config.stages ?? planning.stages ?? 2;
    const layers = analyzeModelJson(source.json, source.path).layers.length;
    const profile = planning.profile ?? true;
    step(
      `${label}: ${profile ? 'profiling' : 'estimating'} ${layers} layers; ${stages} stages are planned once the workers have joined`,
    );
    const layerCostsMs = profile
      ? await profileTopology(source.json, { runs: 3, warmup: 1, clock: 'auto', path: source.path })
      : undefined;
    plan = { stages, ...(layerCostsMs === undefined ? {} : { layerCostsMs }) };
  }
  return {
    name: version.model,
    version: version.version,
    artifacts: source,
    ...(cuts === undefined ? { plan } : { cuts }),
    ...(labels === undefined ? {} : { labels }),
    ...(config.weightQuantization === undefined ? {} : { weightQuantization: config.weightQuantization }),
  };
}
