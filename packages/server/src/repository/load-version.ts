/**
 * Turns a repository version into what the coordinator deploys: the model loaded from disk,
 * the weight quantization its config asks for (shipped in TF.js's quantized format), its labels, and its cuts (the version's
 * `cuts`, else planned for its `stages` like `dinfer master --model`).
 *
 * @module
 */
import {
  analyzeModel,
  type DeploymentSpec,
  DinferError,
  DinferErrorCode,
  loadLayersModel,
  planCuts,
  profileLayers,
} from '@dinfer/core';
import type * as tf from '@tensorflow/tfjs';
import { readLabels } from '../cluster/labels.js';
import type { RepositoryVersion } from './scan.js';

/** How versions without explicit `cuts` are planned. */
export interface VersionPlanning {
  /** Pipeline stages when the version's config does not say. Default 2. */
  readonly stages?: number | undefined;
  /** Profile layers on this machine (else FLOPs estimates). Default true. */
  readonly profile?: boolean | undefined;
  /** Receives progress messages. */
  readonly onStep?: ((step: string) => void) | undefined;
}

/**
 * Refuses a model with NaN or infinite weights before anything is shipped (the coordinator's
 * warm-up check sees only what reaches the outputs for one input of zeros).
 *
 * @throws DinferError MODEL_CORRUPT naming the first such weight and how many values are bad.
 */
export function checkFiniteWeights(model: tf.LayersModel, label: string): void {
  for (const layer of model.layers) {
    for (const weight of layer.weights) {
      if (weight.dtype !== 'float32') continue;
      const values = weight.read().dataSync() as Float32Array;
      let bad = 0;
      for (const v of values) if (!Number.isFinite(v)) bad++;
      if (bad > 0) {
        throw new DinferError(
          DinferErrorCode.MODEL_CORRUPT,
          `${label}: weight ${weight.name} has ${bad} non-finite value(s) (NaN or Infinity) of ${values.length}`,
          { details: { weight: weight.name, nonFinite: bad } },
        );
      }
    }
  }
}

/**
 * Loads `version` from disk and prepares its deployment.
 *
 * @throws DinferError MODEL_CORRUPT (with the scan's reason) for an unavailable version or
 *   non-finite weights; the errors of `loadLayersModel`, `readLabels` and `planCuts` otherwise.
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
  step(`loading ${label} from ${version.modelJson}`);
  const model = await loadLayersModel(version.modelJson);
  checkFiniteWeights(model, label);
  const { config } = version;
  const labels = version.labelsFile ? await readLabels(version.labelsFile) : undefined;
  let cuts = config.cuts;
  let stageMs: readonly number[] | undefined;
  if (cuts === undefined) {
    const stages = config.stages ?? planning.stages ?? 2;
    const analysis = analyzeModel(model);
    const profile = planning.profile ?? true;
    step(
      `${label}: ${profile ? 'profiling' : 'estimating'} ${analysis.layers.length} layers, planning ${stages} stages`,
    );
    const layerCostsMs = profile ? await profileLayers(model, { runs: 3, warmup: 1 }) : undefined;
    const plan = planCuts(analysis, { stages, layerCostsMs });
    cuts = plan.cuts;
    stageMs = plan.stages.map((s) => s.estimatedMs);
  }
  return {
    name: version.model,
    version: version.version,
    model,
    cuts,
    ...(labels === undefined ? {} : { labels }),
    ...(stageMs === undefined ? {} : { stageMs }),
    ...(config.weightQuantization === undefined ? {} : { weightQuantization: config.weightQuantization }),
  };
}
