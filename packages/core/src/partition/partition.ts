/**
 * Splits a LayersModel into pipeline stages at given cut indices.
 *
 * Stage `i` holds layers `[cuts[i-1], cuts[i])` (with `cuts[-1] = 0`, `cuts[n] = L`): it runs
 * the layer calls whose position (graph.ts, `GraphNode.position`) lies in that range. It is a
 * standalone `tf.LayersModel` built by re-applying the SAME layer objects (weights shared, not
 * copied) to fresh `tf.input()` placeholders, node by node, following the original model's
 * graph snapshot (graph.ts), so the extra nodes that stage models add to shared layers are
 * never followed.
 *
 * A shared layer (one layer object called several times) runs each call where its inputs
 * are: a later call that reads the output of a layer listed after the shared layer runs in
 * the stage of that layer. When its calls fall in several stages, each of those stage models
 * contains the layer once (so layer names stay unique in every stage model) and saves its
 * weights: every stage that calls the layer ships with its own copy of them.
 *
 * Signatures:
 * - stage 0 takes the model inputs, in model order;
 * - stage `i > 0` takes exactly what stage `i - 1` emits: the tensors crossing `cuts[i-1]`;
 * - stage `i < n` emits the tensors crossing `cuts[i]`; the last stage emits the model outputs
 *   in model order.
 * A tensor computed in stage `a` and read in stage `b > a + 1` (a long skip connection, a model
 * input read late, a model output computed early) crosses every cut in between, so the stages
 * in between take it as an input and emit it unchanged: Keras functional models allow an
 * input to be an output too, so no custom layer is needed and stage artifacts load with plain
 * `tf.loadLayersModel`.
 *
 * Stage models name their `InputLayer`s with {@link kerasSafeName} of the tensor name; the
 * {@link TensorSpec} names in `inputs`/`outputs` are the scheme names, in the stage model's
 * own input/output order.
 *
 * @module
 */
import * as tf from '@tensorflow/tfjs';
import { DinferError, DinferErrorCode } from '../errors.js';
import { specOf } from '../model/cut-graph.js';
import { buildModelGraph, type GraphTensor, layerWeightBytes, type ModelGraph } from '../model/graph.js';
import { analyzeGraph, crossingTensors } from '../model/graph-analysis.js';
import { kerasSafeName } from '../model/tensor-names.js';
import type { ModelAnalysis, TensorSpec } from '../model/types.js';
import { validateCuts } from './cut-validation.js';

/** What a stage is, whichever partitioner made it: its range, its signature and its weights. */
export interface StageSignature {
  /** Position of the stage in the pipeline, from 0. */
  readonly index: number;
  /**
   * The range of the original `model.layers` it holds: `[start, end)`. It also holds a shared
   * layer listed before `start` whose later calls run in this range.
   */
  readonly layers: readonly [start: number, end: number];
  /** What the stage reads, in the stage model's input order. */
  readonly inputs: readonly TensorSpec[];
  /** What the stage emits, in the stage model's output order. */
  readonly outputs: readonly TensorSpec[];
  /** Bytes of the weights of the layers this stage calls (a shared layer's in each stage calling it). */
  readonly weightBytes: number;
}

/** One stage of a {@link Partition}. */
export interface PartitionStage extends StageSignature {
  /** The standalone stage model (layers and weights shared with the original model). */
  readonly model: tf.LayersModel;
}

/** A model split into pipeline stages. */
export interface Partition {
  /** The analysis of the original model. */
  readonly analysis: ModelAnalysis;
  /** The cut indices used, strictly increasing. */
  readonly cuts: readonly number[];
  readonly stages: readonly PartitionStage[];
  /** The original model's inputs (same as `analysis.inputs`). */
  readonly inputs: readonly TensorSpec[];
  /** The original model's outputs (same as `analysis.outputs`). */
  readonly outputs: readonly TensorSpec[];
}

function buildStage(
  graph: ModelGraph,
  index: number,
  start: number,
  end: number,
  inputs: readonly GraphTensor[],
  outputs: readonly GraphTensor[],
): PartitionStage {
  const symbolic = new Map<string, tf.SymbolicTensor>();
  const calls = graph.nodes.filter((node) => node.position >= start && node.position < end);
  const layers = new Set(calls.map((node) => node.layer));
  const usedNames = new Set([...layers].map((layer) => layer.name));
  const placeholders = inputs.map((tensor) => {
    let name = kerasSafeName(tensor.name);
    for (let n = 1; usedNames.has(name); n++) name = `${kerasSafeName(tensor.name)}_${n}`;
    usedNames.add(name);
    const placeholder = tf.input({ batchShape: [...tensor.shape], dtype: tensor.dtype as tf.DataType, name });
    symbolic.set(tensor.key, placeholder);
    return placeholder;
  });

  for (const node of calls) {
    const args = node.inputs.map((t) => {
      const value = symbolic.get(t.key);
      if (!value) {
        throw new DinferError(
          DinferErrorCode.INTERNAL,
          `stage ${index}: tensor "${t.name}" needed by layer "${node.layer.name}" is not available`,
          { details: { stage: index, tensor: t.name, layer: node.layer.name } },
        );
      }
      return value;
    });
    const kwargs = { ...(node.node.callArgs ?? {}) };
    const result = node.layer.apply(args.length === 1 ? args[0]! : args, kwargs) as
      | tf.SymbolicTensor
      | tf.SymbolicTensor[];
    const produced = Array.isArray(result) ? result : [result];
    node.outputs.forEach((t, k) => {
      const value = produced[k];
      if (!value) {
        throw new DinferError(
          DinferErrorCode.INTERNAL,
          `layer "${node.layer.name}" returned too few outputs`,
          {
            details: { layer: node.layer.name },
          },
        );
      }
      symbolic.set(t.key, value);
    });
  }

  const stageOutputs = outputs.map((t) => {
    const value = symbolic.get(t.key);
    if (!value) {
      throw new DinferError(DinferErrorCode.INTERNAL, `stage ${index} cannot produce "${t.name}"`, {
        details: { stage: index, tensor: t.name },
      });
    }
    return value;
  });
  const model = tf.model({
    inputs: placeholders,
    outputs: stageOutputs,
    name: `${graph.name}_stage${index}`,
  });
  let weightBytes = 0;
  for (const layer of layers) weightBytes += layerWeightBytes(layer);
  return {
    index,
    layers: [start, end],
    model,
    inputs: inputs.map(specOf),
    outputs: outputs.map(specOf),
    weightBytes,
  };
}

/**
 * Splits `model` at `cuts` into `cuts.length + 1` standalone stage models (see the module
 * documentation for the signatures). An empty `cuts` gives one stage equivalent to the model.
 *
 * @throws DinferError PARTITION_INVALID_CUT when a cut is not an integer, out of `1..L-1`, not
 *   strictly increasing, or leaves a stage that computes nothing (only InputLayers); the
 *   message says which, and `details.cut` names the offending cut.
 * @throws DinferError PARTITION_UNSUPPORTED when the model graph cannot be walked.
 */
export function partitionModel(model: tf.LayersModel, cuts: readonly number[]): Partition {
  const graph = buildModelGraph(model);
  const analysis = analyzeGraph(graph);
  validateCuts(graph, analysis, cuts);
  const bounds = [0, ...cuts, graph.layers.length];
  const stages: PartitionStage[] = [];
  for (let i = 0; i + 1 < bounds.length; i++) {
    const start = bounds[i]!;
    const end = bounds[i + 1]!;
    const inputs = i === 0 ? graph.inputs : crossingTensors(graph, start);
    const outputs = i + 2 === bounds.length ? graph.outputs : crossingTensors(graph, end);
    stages.push(buildStage(graph, i, start, end, inputs, outputs));
  }
  return { analysis, cuts: [...cuts], stages, inputs: analysis.inputs, outputs: analysis.outputs };
}
