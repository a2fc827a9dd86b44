/**
 * Cut analysis over a graph snapshot: which tensors cross each cut, which cuts are valid, and
 * the {@link ModelAnalysis} built from them. Internal module, not part of the public API.
 *
 * @module
 */
import {
  bytesPerExample,
  type CutGraph,
  type CutLayer,
  type CutTensor,
  isInputClass,
  specOf,
} from './cut-graph.js';
import type { CrossingTensor, CutInfo, LayerInfo, ModelAnalysis, SymbolicShape } from './types.js';

/** True when the tensor is produced before cut `k` and needed at or after it. */
function crosses(tensor: CutTensor, k: number): boolean {
  if (tensor.position >= k) return false;
  if (tensor.outputIndices.length > 0) return true;
  return tensor.consumers.some((c) => c.position >= k);
}

/**
 * The tensors crossing cut `k` (calls at positions `[0, k)` before, `[k, L)` after, see
 * `GraphNode.position`), in a stable order: model inputs in model order, then
 * intermediate tensors in the graph's topological order. Model outputs produced before the
 * cut cross it; model inputs cross it when read after it.
 * @internal
 */
export function crossingTensors<T extends CutTensor>(
  graph: { readonly tensors: readonly T[] },
  k: number,
): T[] {
  return graph.tensors.filter((t) => crosses(t, k));
}

/** Per cut position `k` (index `k` of the result, 0 and L unused): whether it is a valid cut. @internal */
export function cutValidity(graph: CutGraph): boolean[] {
  const count = graph.layers.length;
  // callsBefore[k]: calls at positions [0, k). Every call computes: InputLayers have none.
  const callsBefore = new Array<number>(count + 1).fill(0);
  for (const node of graph.nodes) callsBefore[node.position + 1]! += 1;
  for (let k = 1; k <= count; k++) callsBefore[k]! += callsBefore[k - 1]!;
  const total = callsBefore[count]!;
  const valid: boolean[] = [];
  for (let k = 0; k <= count; k++) {
    valid.push(k > 0 && k < count && callsBefore[k]! > 0 && total - callsBefore[k]! > 0);
  }
  return valid;
}

const quoted = (layers: readonly CutLayer[]): string => layers.map((l) => `"${l.name}"`).join(', ');

/**
 * Why the stage `[start, end)` would compute nothing, or `undefined` when some call runs in
 * it. A cut set can leave such a stage even though each cut is valid on its own (two cuts
 * around an InputLayer). @internal
 */
export function idleStageReason(graph: CutGraph, start: number, end: number): string | undefined {
  if (graph.nodes.some((n) => n.position >= start && n.position < end)) return undefined;
  const listed = graph.layers.slice(start, end);
  const inputs = listed.filter(isInputClass);
  const deferred = listed.filter((l) => !isInputClass(l));
  const why: string[] = [];
  if (inputs.length > 0) why.push(`it would hold only the InputLayer(s) ${quoted(inputs)}`);
  if (deferred.length > 0) {
    why.push(`every call of ${quoted(deferred)} reads a tensor computed after it, so runs in a later stage`);
  }
  return `stage [${start}, ${end}) would hold no computing layer: ${why.join('; ')}`;
}

function crossingOf(tensor: CutTensor): CrossingTensor {
  return { ...specOf(tensor), bytesPerExample: bytesPerExample(tensor.shape, tensor.dtype) };
}

/** Builds the analysis from an existing graph snapshot. @internal */
export function analyzeGraph(graph: CutGraph): ModelAnalysis {
  const layers: LayerInfo[] = graph.layers.map((layer, index) => {
    const nodes = graph.nodesByLayer[index] ?? [];
    const calls = nodes.map((node) => ({ position: node.position, flops: node.flops }));
    const outputShapes: SymbolicShape[] =
      nodes.length > 0
        ? nodes.flatMap((n) => n.outputs.map((t) => t.shape))
        : graph.inputs.filter((t) => t.name === layer.name).map((t) => t.shape);
    return {
      index,
      name: layer.name,
      className: layer.className,
      outputShapes,
      params: layer.params,
      weightBytes: layer.weightBytes,
      largestWeightBytes: layer.largestWeightBytes,
      activationBytes: Math.max(
        0,
        ...nodes.map((node) =>
          [...node.inputs, ...node.outputs].reduce((sum, t) => sum + bytesPerExample(t.shape, t.dtype), 0),
        ),
      ),
      flops: calls.reduce((sum, call) => sum + call.flops, 0),
      calls,
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
