/**
 * The graph of a model described by its `model.json` alone: layers in the order TF.js gives
 * `model.layers` (layer-order.ts), every call at its position, every tensor with its stable
 * name (tensor-names.ts), shapes from the layers' configs (keras-layer-shapes.ts) and each
 * layer's weights from the weights manifest. No layer is built and no weight is read, so a
 * model of any size is analysed in the memory its `model.json` takes.
 *
 * It is the same graph `buildModelGraph` takes from a model TF.js builds from that
 * `model.json`: the same layers, positions, tensor names and shapes, so both partitioners cut
 * a model at the same places and give stages the same signatures.
 *
 * A weight belongs to the layer whose name prefixes it (`conv1/kernel` to `conv1`); a nested
 * model owns the weights of its own layers (TF.js names them after the inner layer).
 *
 * @module
 */
import type * as tf from '@tensorflow/tfjs';
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
import { callOutputShapes, unbuiltLayer } from './keras-layer-shapes.js';
import {
  isModelClass,
  type KerasInbound,
  type KerasLayerEntry,
  type KerasTopology,
  nestedTopology,
  parseKerasTopology,
} from './keras-topology.js';
import { functionalLayerOrder } from './layer-order.js';
import { intermediateTensorName } from './tensor-names.js';
import type { DType, SymbolicShape } from './types.js';

/** A weight of the manifest: its name, shape and dtype (and stored quantization, if any). */
export type ManifestWeight = tf.io.WeightsManifestEntry;

/** One entry of `model.layers`. */
export interface TopologyLayer extends CutLayer {
  /** The layer's entry in the topology (class, config, inbound nodes). */
  readonly entry: KerasLayerEntry;
  /** Its weights, in manifest order (a nested model: its layers'). */
  readonly weights: readonly ManifestWeight[];
}

/** One call of a layer. */
export interface TopologyNode extends CutNode {
  readonly layer: TopologyLayer;
  /** The call's index among the layer's calls, as TF.js numbers them (a nested model's first is 1). */
  readonly nodeIndex: number;
  /** The call's keyword arguments, as stored. */
  readonly kwargs: Readonly<Record<string, unknown>>;
  readonly inputs: readonly TopologyTensor[];
  readonly outputs: readonly TopologyTensor[];
}

/** A tensor of the graph. */
export interface TopologyTensor extends CutTensor {
  /** Set once the graph is built: a model output takes its output layer's name. */
  name: string;
  /** The call that computes it; undefined for a model input. */
  readonly producer: TopologyNode | undefined;
  /** Its index among the producer's outputs (0 for a model input). */
  readonly tensorIndex: number;
  readonly consumers: TopologyNode[];
  readonly outputIndices: number[];
}

/** The graph of a topology. */
export interface TopologyGraph extends CutGraph {
  readonly topology: KerasTopology;
  readonly layers: readonly TopologyLayer[];
  readonly inputs: readonly TopologyTensor[];
  readonly outputs: readonly TopologyTensor[];
  readonly nodes: readonly TopologyNode[];
  readonly tensors: readonly TopologyTensor[];
  readonly nodesByLayer: readonly (readonly TopologyNode[])[];
}

const dtypeSize: Record<string, number> = { float32: 4, int32: 4, bool: 1, complex64: 8 };

function elementsOf(weight: ManifestWeight): number {
  return weight.shape.reduce((a, b) => a * b, 1);
}

/** Bytes a weight takes once loaded: its dtype's, whatever form it is stored in. */
export function loadedWeightBytes(weight: ManifestWeight): number {
  return elementsOf(weight) * (dtypeSize[weight.dtype] ?? 4);
}

function unsupported(where: string, message: string, details: Record<string, unknown> = {}): DinferError {
  return new DinferError(DinferErrorCode.PARTITION_UNSUPPORTED, `${where}: ${message}`, {
    details: { path: where, ...details },
  });
}

/** Every layer name inside a nested model's topology, its own nested models' included. */
function innerLayerNames(topology: KerasTopology, where: string): string[] {
  return topology.layers.flatMap((entry) =>
    isModelClass(entry.className)
      ? [entry.name, ...innerLayerNames(nestedTopology(entry, where), where)]
      : [entry.name],
  );
}

/**
 * Gives each weight to the layer whose name prefixes it (the longest such name), a nested
 * model's inner layer names counting for the nested model.
 *
 * @throws DinferError MODEL_CORRUPT for a weight no layer of the model owns.
 */
function attributeWeights(
  entries: readonly KerasLayerEntry[],
  weights: readonly ManifestWeight[],
  where: string,
): Map<string, ManifestWeight[]> {
  const owner = new Map<string, string>();
  for (const entry of entries) {
    owner.set(entry.name, entry.name);
    if (isModelClass(entry.className)) {
      for (const inner of innerLayerNames(nestedTopology(entry, where), where)) owner.set(inner, entry.name);
    }
  }
  const byLayer = new Map<string, ManifestWeight[]>(entries.map((e) => [e.name, []]));
  for (const weight of weights) {
    let layer: string | undefined;
    for (let cut = weight.name.lastIndexOf('/'); cut > 0 && layer === undefined; ) {
      layer = owner.get(weight.name.slice(0, cut));
      cut = weight.name.lastIndexOf('/', cut - 1);
    }
    if (layer === undefined) {
      throw new DinferError(
        DinferErrorCode.MODEL_CORRUPT,
        `${where}: weight "${weight.name}" belongs to no layer of the model (weights are named <layer>/<weight>)`,
        { details: { path: where, weight: weight.name } },
      );
    }
    byLayer.get(layer)!.push(weight);
  }
  return byLayer;
}

interface CallSpec {
  readonly entry: KerasLayerEntry;
  /** TF.js's index of this call among the layer's calls. */
  readonly nodeIndex: number;
  readonly inbound: readonly KerasInbound[];
}

/**
 * Builds the graph of `topology` from its layer configs and the manifest `weights`.
 *
 * @param inputShapes Shapes the model inputs are called with, when it is a nested model
 *   (default: its InputLayers' own).
 * @throws DinferError MODEL_CORRUPT for references to missing layers or nodes and weights no
 *   layer owns; MODEL_UNSUPPORTED for unknown layer classes; PARTITION_UNSUPPORTED for a
 *   graph TF.js would not build (a cycle, an output that is an input) or a layer whose
 *   output shape cannot be told from its config.
 */
export function buildTopologyGraph(
  topology: KerasTopology,
  weights: readonly ManifestWeight[],
  where: string,
  inputShapes?: readonly SymbolicShape[],
): TopologyGraph {
  const entries = new Map(topology.layers.map((e) => [e.name, e]));
  if (entries.size !== topology.layers.length) {
    throw unsupported(where, `model "${topology.name}" has two layers of the same name`);
  }
  const calls = new Map<string, CallSpec>();
  const callKey = (layer: string, nodeIndex: number) => `${layer}\u0000${nodeIndex}`;
  let order: string[];
  let inputRefs: { layer: string; nodeIndex: number; name: string; shape: SymbolicShape; dtype: DType }[];
  let outputRefs: { layer: string; nodeIndex: number; tensorIndex: number }[];

  const batchShapeOf = (entry: KerasLayerEntry): SymbolicShape | undefined => {
    const config = entry.config;
    const batch = config.batch_input_shape ?? config.batch_shape;
    if (Array.isArray(batch)) return batch.map((d) => (typeof d === 'number' ? d : null));
    if (Array.isArray(config.input_shape))
      return [null, ...config.input_shape.map((d) => (typeof d === 'number' ? d : null))];
    return undefined;
  };
  const overridden = (i: number, own: SymbolicShape): SymbolicShape => {
    const given = inputShapes?.[i];
    return given !== undefined && given.length === own.length ? given : own;
  };

  if (topology.kind === 'sequential') {
    const first = topology.layers[0];
    if (first === undefined) throw unsupported(where, `Sequential model "${topology.name}" has no layers`);
    order = topology.layers.map((e) => e.name);
    const explicitInput = first.className === 'InputLayer';
    const shape = batchShapeOf(first);
    if (shape === undefined) {
      throw unsupported(where, `the first layer of Sequential model "${topology.name}" has no input shape`, {
        layer: first.name,
      });
    }
    const inputName = explicitInput ? first.name : `${first.name}_input`;
    inputRefs = [
      {
        layer: inputName,
        nodeIndex: 0,
        name: inputName,
        shape: overridden(0, shape),
        dtype: toDType(first.config.dtype),
      },
    ];
    let previous = { layer: inputName, nodeIndex: 0 };
    for (const entry of explicitInput ? topology.layers.slice(1) : topology.layers) {
      const nodeIndex = isModelClass(entry.className) ? 1 : 0;
      calls.set(callKey(entry.name, nodeIndex), {
        entry,
        nodeIndex,
        inbound: [{ ...previous, tensorIndex: 0, kwargs: {} }],
      });
      previous = { layer: entry.name, nodeIndex };
    }
    outputRefs = [{ ...previous, tensorIndex: 0 }];
  } else {
    for (const entry of topology.layers) {
      const offset = isModelClass(entry.className) ? 1 : 0;
      entry.inboundNodes.forEach((inbound, i) => {
        calls.set(callKey(entry.name, i + offset), { entry, nodeIndex: i + offset, inbound });
      });
    }
    const nodeOf = (layer: string, nodeIndex: number) => {
      const entry = entries.get(layer);
      if (entry === undefined) return undefined;
      if (entry.className === 'InputLayer') return nodeIndex === 0 ? { layer, inbound: [] } : undefined;
      const call = calls.get(callKey(layer, nodeIndex));
      return call === undefined ? undefined : { layer, inbound: call.inbound };
    };
    order = functionalLayerOrder(topology.outputs, nodeOf, where);
    const names = uniqueNames(
      topology.inputs.map((ref) => ref.layer),
      (i) => `input_${i}`,
    );
    inputRefs = topology.inputs.map((ref, i) => {
      const entry = entries.get(ref.layer);
      if (entry?.className !== 'InputLayer' || ref.nodeIndex !== 0 || ref.tensorIndex !== 0) {
        throw unsupported(where, `model input ${i} ("${ref.layer}") is not an InputLayer`, {
          layer: ref.layer,
        });
      }
      const shape = batchShapeOf(entry);
      if (shape === undefined)
        throw unsupported(where, `InputLayer "${entry.name}" has no batch_input_shape`);
      return {
        layer: ref.layer,
        nodeIndex: 0,
        name: names[i]!,
        shape: overridden(i, shape),
        dtype: toDType(entry.config.dtype),
      };
    });
    outputRefs = [...topology.outputs];
  }

  const byLayer = attributeWeights(topology.layers, weights, where);
  const ordered = new Set(order);
  for (const [layer, owned] of byLayer) {
    if (owned.length > 0 && !ordered.has(layer)) {
      throw new DinferError(
        DinferErrorCode.MODEL_CORRUPT,
        `${where}: layer "${layer}" holds weights but the model's outputs do not depend on it`,
        { details: { path: where, layer } },
      );
    }
  }
  const layers: TopologyLayer[] = order.map((name) => {
    const entry = entries.get(name)!;
    const owned = byLayer.get(name) ?? [];
    return {
      name,
      className: entry.className,
      params: owned.reduce((sum, w) => sum + elementsOf(w), 0),
      weightBytes: owned.reduce((sum, w) => sum + loadedWeightBytes(w), 0),
      largestWeightBytes: Math.max(0, ...owned.map(loadedWeightBytes)),
      entry,
      weights: owned,
    };
  });
  const layerIndex = new Map(order.map((name, i) => [name, i]));

  const tensorKey = (layer: string, nodeIndex: number, tensorIndex: number) =>
    `${layer}/${nodeIndex}/${tensorIndex}`;
  const tensors = new Map<string, TopologyTensor>();
  const tensorList: TopologyTensor[] = [];
  const inputs = inputRefs.map((ref, i) => {
    const tensor: TopologyTensor = {
      key: tensorKey(ref.layer, 0, 0),
      name: ref.name,
      shape: ref.shape,
      dtype: ref.dtype,
      producer: undefined,
      tensorIndex: 0,
      position: -1,
      consumers: [],
      outputIndices: [],
      inputIndex: i,
    };
    tensors.set(tensor.key, tensor);
    tensorList.push(tensor);
    return tensor;
  });

  const nodes: TopologyNode[] = [];
  const unbuilt = new Map<string, tf.layers.Layer>();
  const finalize = (call: CallSpec): void => {
    const index = layerIndex.get(call.entry.name);
    const layer = index === undefined ? undefined : layers[index];
    if (index === undefined || layer === undefined) {
      throw unsupported(where, `layer "${call.entry.name}" is called but is not in the model's layers`);
    }
    const callInputs = call.inbound.map((ref) => {
      const tensor = tensors.get(tensorKey(ref.layer, ref.nodeIndex, ref.tensorIndex));
      if (tensor === undefined) {
        throw new DinferError(
          DinferErrorCode.MODEL_CORRUPT,
          `${where}: layer "${call.entry.name}" reads output ${ref.tensorIndex} of node ${ref.nodeIndex} of "${ref.layer}", which does not exist`,
          { details: { path: where, layer: call.entry.name } },
        );
      }
      return tensor;
    });
    const position = callInputs.reduce((latest, t) => Math.max(latest, t.position), index);
    const inputShapesOfCall = callInputs.map((t) => t.shape);
    let outputShapes: SymbolicShape[];
    let flops: number;
    if (isModelClass(call.entry.className)) {
      const inner = buildTopologyGraph(
        nestedTopology(call.entry, where),
        layer.weights,
        `${where} > ${call.entry.name}`,
        inputShapesOfCall,
      );
      outputShapes = inner.outputs.map((t) => t.shape);
      flops = inner.nodes.reduce((sum, n) => sum + n.flops, 0);
    } else {
      let object = unbuilt.get(call.entry.name);
      if (object === undefined) {
        object = unbuiltLayer(call.entry.className, call.entry.config, `${where} > ${call.entry.name}`);
        unbuilt.set(call.entry.name, object);
      }
      outputShapes = callOutputShapes(object, inputShapesOfCall, where);
      flops = estimateCallFlops({
        className: call.entry.className,
        inputShapes: inputShapesOfCall,
        outputShapes,
        weightShape: (suffix) => layer.weights.find((w) => w.name.endsWith(suffix))?.shape,
        activation: call.entry.config.activation,
        poolSize: call.entry.config.pool_size,
      });
    }
    const node: TopologyNode = {
      layer,
      layerIndex: index,
      position,
      nodeIndex: call.nodeIndex,
      // TF.js calls the layer with the kwargs of its last input entry.
      kwargs: call.inbound[call.inbound.length - 1]?.kwargs ?? {},
      inputs: callInputs,
      outputs: [],
      flops,
    };
    const outputs = outputShapes.map((shape, k) => {
      const tensor: TopologyTensor = {
        key: tensorKey(call.entry.name, call.nodeIndex, k),
        name: intermediateTensorName(call.entry.name, call.nodeIndex, k),
        shape,
        dtype: 'float32',
        producer: node,
        tensorIndex: k,
        position,
        consumers: [],
        outputIndices: [],
        inputIndex: undefined,
      };
      tensors.set(tensor.key, tensor);
      tensorList.push(tensor);
      return tensor;
    });
    (node as { outputs: readonly TopologyTensor[] }).outputs = outputs;
    for (const input of callInputs) input.consumers.push(node);
    nodes.push(node);
  };

  // Post-order walk from the outputs, as buildModelGraph walks a model in memory.
  const done = new Set<string>();
  const visiting = new Set<string>();
  const visit = (layer: string, nodeIndex: number): void => {
    const key = callKey(layer, nodeIndex);
    if (done.has(key) || tensors.has(tensorKey(layer, nodeIndex, 0))) return;
    const call = calls.get(key);
    if (call === undefined) {
      const entry = entries.get(layer);
      throw entry?.className === 'InputLayer'
        ? unsupported(
            where,
            `InputLayer "${layer}" feeds model "${topology.name}" but is not one of its inputs`,
            {
              layer,
            },
          )
        : new DinferError(
            DinferErrorCode.MODEL_CORRUPT,
            `${where}: node ${nodeIndex} of layer "${layer}" does not exist`,
            {
              details: { path: where, layer, nodeIndex },
            },
          );
    }
    if (visiting.has(key)) throw unsupported(where, `cycle in graph at layer "${layer}"`);
    visiting.add(key);
    for (const ref of call.inbound) visit(ref.layer, ref.nodeIndex);
    visiting.delete(key);
    done.add(key);
    finalize(call);
  };
  for (const ref of outputRefs) visit(ref.layer, ref.nodeIndex);

  const outputs = markModelOutputs(
    outputRefs.map((ref) => tensors.get(tensorKey(ref.layer, ref.nodeIndex, ref.tensorIndex))),
    outputRefs.map((ref) => ref.layer),
    topology.name,
    (message, details) => unsupported(where, message, details),
  );

  const nodesByLayer: TopologyNode[][] = layers.map(() => []);
  for (const node of nodes) nodesByLayer[node.layerIndex]!.push(node);
  return { name: topology.name, topology, layers, inputs, outputs, nodes, tensors: tensorList, nodesByLayer };
}

const graphs = new WeakMap<object, TopologyGraph>();

/**
 * The graph of a checked `model.json`: its topology and the weights its manifest lists.
 * Memoised per `json` object (treat it as immutable once analysed).
 */
export function modelJsonGraph(
  json: Pick<tf.io.ModelJSON, 'modelTopology' | 'weightsManifest'>,
  path: string,
): TopologyGraph {
  let graph = graphs.get(json);
  if (graph === undefined) {
    const weights = (json.weightsManifest ?? []).flatMap((group) => group.weights);
    graph = buildTopologyGraph(parseKerasTopology(json.modelTopology, path), weights, path);
    graphs.set(json, graph);
  }
  return graph;
}
