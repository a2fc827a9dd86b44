/**
 * Cut analysis over a graph snapshot: which tensors cross each cut, which cuts are valid, and
 * the {@link ModelAnalysis} built from them. Internal module, not part of the public API.
 *
 * @module
 */
import { estimateLayerFlops } from './flops.js';
import {
  bytesPerExample,
  type GraphTensor,
  isInputLayer,
  type Layer,
  type ModelGraph,
  specOf,
} from './graph.js';
import type { CrossingTensor, CutInfo, LayerInfo, ModelAnalysis, SymbolicShape } from './types.js';

const dtypeSize: Record<string, number> = { float32: 4, int32: 4, bool: 1, complex64: 8, string: 0 };

/** Bytes of a layer's weights (every variable, trainable or not). */
export function layerWeightBytes(layer: Layer): number {
  return layer.weights.reduce((sum, w) => {
    const elements = w.shape.reduce<number>((a, b) => a * (b ?? 1), 1);
    return sum + elements * (dtypeSize[w.dtype] ?? 4);
  }, 0);
}

/** True when the tensor is produced before cut `k` and needed at or after it. */
function crosses(tensor: GraphTensor, k: number): boolean {
  if (tensor.position >= k) return false;
  if (tensor.outputIndices.length > 0) return true;
  return tensor.consumers.some((c) => c.layerIndex >= k);
}

/**
 * The tensors crossing cut `k` (layers `[0, k)` before, `[k, L)` after), in a stable order:
 * model inputs in model order, then intermediate tensors in the graph's topological order.
 * Model outputs produced before the cut cross it; model inputs cross it when read after it.
 * @internal
 */
export function crossingTensors(graph: ModelGraph, k: number): GraphTensor[] {
  return graph.tensors.filter((t) => crosses(t, k));
}

/** Per cut position `k` (index `k` of the result, 0 and L unused): whether it is a valid cut. @internal */
export function cutValidity(graph: ModelGraph): boolean[] {
  const count = graph.layers.length;
  // computing[k]: number of non-input layers with at least one node among layers [0, k).
  const computing = [0];
  graph.layers.forEach((layer, i) => {
    const isComputing = !isInputLayer(layer) && (graph.nodesByLayer[i]?.length ?? 0) > 0;
    computing.push(computing[i]! + (isComputing ? 1 : 0));
  });
  const total = computing[count]!;
  const valid: boolean[] = [];
  for (let k = 0; k <= count; k++) {
    valid.push(k > 0 && k < count && computing[k]! > 0 && total - computing[k]! > 0);
  }
  // A cut k is not causal when a tensor produced at position p >= k is read at position < k
  // (a shared layer applied again after a later layer).
  for (const tensor of graph.tensors) {
    if (tensor.position < 0) continue;
    for (const consumer of tensor.consumers) {
      for (let k = consumer.layerIndex + 1; k <= tensor.position; k++) valid[k] = false;
    }
  }
  return valid;
}

/**
 * True when every stage `[cuts[i-1], cuts[i])` has at least one computing layer. A cut set can
 * be invalid even though each cut is valid on its own (two cuts around an InputLayer). @internal
 */
export function stageHasComputingLayer(graph: ModelGraph, start: number, end: number): boolean {
  for (let i = start; i < end; i++) {
    const layer = graph.layers[i]!;
    if (!isInputLayer(layer) && (graph.nodesByLayer[i]?.length ?? 0) > 0) return true;
  }
  return false;
}

function crossingOf(tensor: GraphTensor): CrossingTensor {
  return { ...specOf(tensor), bytesPerExample: bytesPerExample(tensor.shape, tensor.dtype) };
}

/** Builds the analysis from an existing graph snapshot. @internal */
export function analyzeGraph(graph: ModelGraph): ModelAnalysis {
  const layers: LayerInfo[] = graph.layers.map((layer, index) => {
    const nodes = graph.nodesByLayer[index] ?? [];
    const outputShapes: SymbolicShape[] =
      nodes.length > 0
        ? nodes.flatMap((n) => n.outputs.map((t) => t.shape))
        : graph.inputs.filter((t) => t.name === layer.name).map((t) => t.shape);
    return {
      index,
      name: layer.name,
      className: layer.getClassName(),
      outputShapes,
      params: layer.countParams(),
      weightBytes: layerWeightBytes(layer),
      flops: estimateLayerFlops(nodes),
    };
  });
  const validity = cutValidity(graph);
  const cuts: CutInfo[] = [];
  for (let k = 1; k < graph.layers.length; k++) {
    const tensors = crossingTensors(graph, k).map(crossingOf);
    cuts.push({
      index: k,
      valid: validity[k] ?? false,
      tensors,
      bytesPerExample: tensors.reduce((sum, t) => sum + t.bytesPerExample, 0),
    });
  }
  return {
    name: graph.name,
    inputs: graph.inputs.map(specOf),
    outputs: graph.outputs.map(specOf),
    layers,
    cuts,
    totalParams: layers.reduce((sum, l) => sum + l.params, 0),
    totalWeightBytes: layers.reduce((sum, l) => sum + l.weightBytes, 0),
  };
}
