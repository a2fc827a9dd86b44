/**
 * Static analysis of a LayersModel: per-layer cost and, for every cut position, the tensors
 * that would cross it.
 *
 * @module
 */
import type * as tf from '@tensorflow/tfjs';
import { buildModelGraph } from './graph.js';
import { analyzeGraph } from './graph-analysis.js';
import { modelJsonGraph } from './topology-graph.js';
import type { ModelAnalysis } from './types.js';

/**
 * Analyses a LayersModel: for each layer of `model.layers` its class, output shapes, params,
 * weight bytes, a FLOPs estimate (see flops.ts) and its calls with where each runs, and for
 * every cut position `k` in `1 .. L-1` the tensors crossing it (see {@link CutInfo}). Tensor
 * names follow the scheme in tensor-names.ts. A cut is `valid` when both sides run a call of a
 * computing layer (InputLayers do not count). A shared layer whose calls fall on both sides
 * of a cut does not make it invalid: both stages hold the layer (see `stageTotals` for the
 * weight bytes of a stage).
 *
 * @throws DinferError PARTITION_UNSUPPORTED when the graph cannot be walked.
 */
export function analyzeModel(model: tf.LayersModel): ModelAnalysis {
  return analyzeGraph(buildModelGraph(model));
}

/**
 * Analyses a model from its `model.json` alone (the Keras topology and the weights
 * manifest), without building it or reading a weight: the same analysis {@link analyzeModel}
 * gives of the model TF.js builds from that `model.json`, at the cost of reading the JSON,
 * whatever the size of the weights.
 *
 * @param path Names the document in messages.
 * @throws DinferError MODEL_CORRUPT, MODEL_UNSUPPORTED or PARTITION_UNSUPPORTED for a topology
 *   that cannot be analysed (the message names the layer).
 */
export function analyzeModelJson(
  json: Pick<tf.io.ModelJSON, 'modelTopology' | 'weightsManifest'>,
  path = '<model.json>',
): ModelAnalysis {
  return analyzeGraph(modelJsonGraph(json, path));
}
