/**
 * A snapshot of a LayersModel's own graph: its nodes (layer applications) in a topological
 * order and the tensors between them, each with its producer, consumers and stable name.
 *
 * The snapshot is taken by walking back from `model.outputs` through
 * `node.inboundLayers / nodeIndices / tensorIndices`. That walk only ever sees the nodes that
 * belong to this model: nodes that layers gain later (for instance when a stage model
 * re-applies them) are never reached, so the snapshot is the same before and after
 * partitioning. Internal module, not part of the public API.
 *
 * @module
 */
import * as tf from '@tensorflow/tfjs';
import { DinferError, DinferErrorCode } from '../errors.js';
import {
  type CutGraph,
  type CutLayer,
  type CutNode,
  type CutTensor,
  markModelOutputs,
  toDType,
  uniqueNames,
} from './cut-graph.js';
import { estimateCallFlops } from './flops.js';
import { intermediateTensorName } from './tensor-names.js';
import type { DType, SymbolicShape } from './types.js';

/** A TF.js layer. */
export type Layer = tf.layers.Layer;
/** A TF.js graph node (one application of a layer). */
export type KerasNode = Layer['inboundNodes'][number];

/** A tensor of the model graph. */
export interface GraphTensor extends CutTensor {
  /** Internal identity: `<layer.id>/<nodeIndex>/<tensorIndex>`. */
  readonly key: string;
  /** The public, stable name (see tensor-names.ts). */
  name: string;
  readonly shape: SymbolicShape;
  readonly dtype: DType;
  /** The node that computes it; `undefined` for a model input. */
  readonly producer: GraphNode | undefined;
  /** Where it is computed: its producer's {@link GraphNode.position}; -1 for model inputs. */
  readonly position: number;
  /** Nodes that read it, in topological order. */
  readonly consumers: GraphNode[];
  /** Indices in `model.outputs` where this tensor appears. */
  readonly outputIndices: number[];
  /** Index in `model.inputs` when it is a model input. */
  readonly inputIndex: number | undefined;
}

/** One application of a layer inside the model. */
export interface GraphNode extends CutNode {
  readonly layer: Layer;
  /** Position of the layer in `model.layers`. */
  readonly layerIndex: number;
  /**
   * Where this call runs along `model.layers`: its layer's index, unless it reads a tensor
   * computed further on (TF.js lists a shared layer at its first call, so a later call of it
   * may read the output of a layer listed after it); then the position of the latest such
   * tensor. A cut at `k` puts the calls at positions `< k` before it, so every call runs
   * after the calls it reads from, and a shared layer whose calls fall on both sides of a
   * cut is held by every stage that calls it.
   */
  readonly position: number;
  /** Index of this node in `layer.inboundNodes`. */
  readonly nodeIndex: number;
  readonly node: KerasNode;
  readonly inputs: readonly GraphTensor[];
  readonly outputs: readonly GraphTensor[];
  /** Position of this node in {@link ModelGraph.nodes}. */
  readonly order: number;
}

/** One entry of `model.layers`: what analysis reads, and the layer object itself. */
export interface GraphLayer extends CutLayer {
  readonly layer: Layer;
}

/** The snapshot of a model's graph. */
export interface ModelGraph extends CutGraph {
  readonly name: string;
  readonly layers: readonly GraphLayer[];
  readonly inputs: readonly GraphTensor[];
  readonly outputs: readonly GraphTensor[];
  /** Every node, inputs before the nodes that read them. */
  readonly nodes: readonly GraphNode[];
  /** Every tensor: model inputs first, then node outputs in node order. */
  readonly tensors: readonly GraphTensor[];
  /** Nodes per layer index. */
  readonly nodesByLayer: readonly (readonly GraphNode[])[];
}

/** True when the layer is itself a LayersModel used as a layer. */
export function isNestedModel(layer: Layer): layer is tf.LayersModel {
  return layer instanceof tf.LayersModel;
}

/** True for a Keras `InputLayer`. */
function isInputLayer(layer: Layer): boolean {
  return layer.getClassName() === 'InputLayer';
}

const dtypeSize: Record<string, number> = { float32: 4, int32: 4, bool: 1, complex64: 8, string: 0 };

function variableBytes(variable: tf.LayerVariable): number {
  return variable.shape.reduce<number>((a, b) => a * (b ?? 1), 1) * (dtypeSize[variable.dtype] ?? 4);
}

/** Bytes of a layer's weights (every variable, trainable or not). */
export function layerWeightBytes(layer: Layer): number {
  return layer.weights.reduce((sum, w) => sum + variableBytes(w), 0);
}

/** Estimated FLOPs of one call of `layer` for one example (a nested model: its own calls). */
function callFlops(layer: Layer, inputs: readonly GraphTensor[], outputs: readonly GraphTensor[]): number {
  if (isNestedModel(layer)) return buildModelGraph(layer).nodes.reduce((sum, inner) => sum + inner.flops, 0);
  const config = layer.getConfig() as { activation?: unknown; poolSize?: unknown };
  return estimateCallFlops({
    className: layer.getClassName(),
    inputShapes: inputs.map((t) => t.shape),
    outputShapes: outputs.map((t) => t.shape),
    weightShape: (suffix) =>
      layer.weights.find((w) => w.originalName.endsWith(suffix) || w.name.endsWith(suffix))?.shape as
        | readonly number[]
        | undefined,
    activation: config.activation,
    poolSize: config.poolSize,
  });
}

/** Takes the snapshot of `model`'s graph. Throws PARTITION_UNSUPPORTED for malformed graphs. */
export function buildModelGraph(model: tf.LayersModel): ModelGraph {
  const modelName = model.name;
  const modelInputs = model.inputs;
  const modelOutputs = model.outputs;
  if (!modelInputs || !modelOutputs || modelInputs.length === 0 || modelOutputs.length === 0) {
    throw new DinferError(
      DinferErrorCode.PARTITION_UNSUPPORTED,
      `model "${modelName}" has no inputs or outputs; build it (give the first layer an inputShape) first`,
      { details: { model: modelName } },
    );
  }
  const layers = model.layers;
  const layerIndex = new Map<number, number>();
  layers.forEach((layer, i) => {
    layerIndex.set(layer.id, i);
  });

  const tensors = new Map<string, GraphTensor>();
  const tensorList: GraphTensor[] = [];
  const tensorKey = (layer: Layer, nodeIndex: number, tensorIndex: number) =>
    `${layer.id}/${nodeIndex}/${tensorIndex}`;

  const inputNames = uniqueNames(
    modelInputs.map((t, i) => model.inputNames?.[i] ?? t.sourceLayer.name),
    (i) => `input_${i}`,
  );
  const inputs = modelInputs.map((t, i) => {
    const tensor: GraphTensor = {
      key: tensorKey(t.sourceLayer, t.nodeIndex, t.tensorIndex),
      name: inputNames[i]!,
      shape: [...t.shape],
      dtype: toDType(t.dtype),
      producer: undefined,
      position: -1,
      consumers: [],
      outputIndices: [],
      inputIndex: i,
    };
    tensors.set(tensor.key, tensor);
    tensorList.push(tensor);
    return tensor;
  });

  const nodes: GraphNode[] = [];
  const nodeByKey = new Map<string, GraphNode>();
  const nodeKey = (layer: Layer, nodeIndex: number) => `${layer.id}/${nodeIndex}`;

  const unsupported = (message: string, details: Record<string, unknown>) =>
    new DinferError(DinferErrorCode.PARTITION_UNSUPPORTED, message, {
      details: { model: modelName, ...details },
    });

  const finalize = (layer: Layer, nodeIndex: number): void => {
    const node = layer.inboundNodes[nodeIndex]!;
    const index = layerIndex.get(layer.id);
    if (index === undefined) {
      throw unsupported(`layer "${layer.name}" is used by model "${modelName}" but is not in model.layers`, {
        layer: layer.name,
      });
    }
    const nodeInputs = node.inboundLayers.map((inbound, j) => {
      const key = tensorKey(inbound, node.nodeIndices[j]!, node.tensorIndices[j]!);
      const tensor = tensors.get(key);
      if (!tensor) throw unsupported(`graph walk lost tensor ${key} feeding "${layer.name}"`, { key });
      return tensor;
    });
    const position = nodeInputs.reduce((latest, t) => Math.max(latest, t.position), index);
    const graphNode: GraphNode = {
      layer,
      layerIndex: index,
      position,
      nodeIndex,
      node,
      inputs: nodeInputs,
      outputs: [],
      order: nodes.length,
      flops: 0,
    };
    const outputs = node.outputTensors.map((t, k) => {
      const tensor: GraphTensor = {
        key: tensorKey(layer, nodeIndex, k),
        name: intermediateTensorName(layer.name, nodeIndex, k),
        shape: [...t.shape],
        dtype: toDType(t.dtype),
        producer: graphNode,
        position,
        consumers: [],
        outputIndices: [],
        inputIndex: undefined,
      };
      tensors.set(tensor.key, tensor);
      tensorList.push(tensor);
      return tensor;
    });
    (graphNode as { outputs: readonly GraphTensor[] }).outputs = outputs;
    (graphNode as { flops: number }).flops = callFlops(layer, nodeInputs, outputs);
    for (const input of nodeInputs) input.consumers.push(graphNode);
    nodes.push(graphNode);
    nodeByKey.set(nodeKey(layer, nodeIndex), graphNode);
  };

  // Iterative post-order DFS from the model outputs: a node is finalised after its inputs.
  interface Frame {
    layer: Layer;
    nodeIndex: number;
    expanded: boolean;
  }
  const visiting = new Set<string>();
  for (const output of modelOutputs) {
    if (tensors.has(tensorKey(output.sourceLayer, output.nodeIndex, output.tensorIndex))) continue;
    const stack: Frame[] = [{ layer: output.sourceLayer, nodeIndex: output.nodeIndex, expanded: false }];
    while (stack.length > 0) {
      const frame = stack[stack.length - 1]!;
      const key = nodeKey(frame.layer, frame.nodeIndex);
      if (nodeByKey.has(key)) {
        stack.pop();
        continue;
      }
      const node = frame.layer.inboundNodes[frame.nodeIndex];
      if (!node) throw unsupported(`layer "${frame.layer.name}" has no node ${frame.nodeIndex}`, {});
      if (isInputLayer(frame.layer)) {
        throw unsupported(
          `InputLayer "${frame.layer.name}" feeds model "${modelName}" but is not one of its inputs`,
          {
            layer: frame.layer.name,
          },
        );
      }
      if (!frame.expanded) {
        frame.expanded = true;
        visiting.add(key);
        for (let j = node.inboundLayers.length - 1; j >= 0; j--) {
          const inbound = node.inboundLayers[j]!;
          const inboundNode = node.nodeIndices[j]!;
          if (tensors.has(tensorKey(inbound, inboundNode, node.tensorIndices[j]!))) continue;
          const childKey = nodeKey(inbound, inboundNode);
          if (visiting.has(childKey)) throw unsupported(`cycle in graph at layer "${inbound.name}"`, {});
          if (!nodeByKey.has(childKey))
            stack.push({ layer: inbound, nodeIndex: inboundNode, expanded: false });
        }
      } else {
        stack.pop();
        visiting.delete(key);
        finalize(frame.layer, frame.nodeIndex);
      }
    }
  }

  const outputs = markModelOutputs(
    modelOutputs.map((t) => tensors.get(tensorKey(t.sourceLayer, t.nodeIndex, t.tensorIndex))),
    modelOutputs.map((t, i) => model.outputNames?.[i] ?? t.sourceLayer.name),
    modelName,
    unsupported,
  );

  const nodesByLayer: GraphNode[][] = layers.map(() => []);
  for (const node of nodes) nodesByLayer[node.layerIndex]!.push(node);

  const graphLayers: GraphLayer[] = layers.map((layer) => ({
    name: layer.name,
    className: layer.getClassName(),
    params: layer.countParams(),
    weightBytes: layerWeightBytes(layer),
    largestWeightBytes: Math.max(0, ...layer.weights.map(variableBytes)),
    layer,
  }));
  return { name: modelName, layers: graphLayers, inputs, outputs, nodes, tensors: tensorList, nodesByLayer };
}
