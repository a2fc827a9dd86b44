/**
 * The `model.json` of one stage, written from the source model's topology graph: a
 * functional model whose InputLayers are the tensors crossing into the stage, whose layers
 * are the source's layer configs (as stored) with only the calls that run in the stage
 * (inbound nodes rewritten to the stage's own node numbering), and whose outputs are the
 * tensors the stage emits. It is what the TF.js-object partitioner's stage model saves to:
 * the same InputLayer names, layers, calls and signature, so it loads with plain
 * `tf.loadLayersModel` and computes the same thing.
 *
 * @module
 */
import type * as tf from '@tensorflow/tfjs';
import type { CheckedModelJson } from '../model/artifacts.js';
import { isModelClass } from '../model/keras-topology.js';
import { kerasSafeName } from '../model/tensor-names.js';
import type { TopologyGraph, TopologyLayer, TopologyNode, TopologyTensor } from '../model/topology-graph.js';

/** What a stage's `model.json` is written from. */
export interface StageTopologyRequest {
  readonly index: number;
  /** The calls at positions `[start, end)` run in the stage. */
  readonly start: number;
  readonly end: number;
  /** What the stage reads, in order: each becomes an InputLayer. */
  readonly inputs: readonly TopologyTensor[];
  /** What the stage emits, in order. */
  readonly outputs: readonly TopologyTensor[];
}

/** A stage's `model.json` (without its weights manifest) and the layers it holds. */
export interface StageTopology {
  readonly json: Omit<tf.io.ModelJSON, 'weightsManifest'>;
  /** The source layers the stage holds, in the source's `model.layers` order. */
  readonly layers: readonly TopologyLayer[];
}

type TensorRef = [layer: string, nodeIndex: number, tensorIndex: number];

/** Writes the `model.json` of the stage `request` of `graph`, whose source `model.json` is `source`. */
export function stageTopology(
  graph: TopologyGraph,
  source: CheckedModelJson,
  request: StageTopologyRequest,
): StageTopology {
  const calls = graph.nodes.filter((node) => node.position >= request.start && node.position < request.end);
  const layers = [...new Set(calls.map((node) => node.layer))].sort(
    (a, b) => graph.layers.indexOf(a) - graph.layers.indexOf(b),
  );
  const refs = new Map<string, TensorRef>();
  const used = new Set(layers.map((layer) => layer.name));
  const placeholders = request.inputs.map((tensor) => {
    const safe = kerasSafeName(tensor.name);
    let name = safe;
    for (let n = 1; used.has(name); n++) name = `${safe}_${n}`;
    used.add(name);
    refs.set(tensor.key, [name, 0, 0]);
    return {
      name,
      class_name: 'InputLayer',
      config: { batch_input_shape: [...tensor.shape], dtype: tensor.dtype, sparse: false, name },
      inbound_nodes: [],
    };
  });
  // Each layer's calls in the stage, numbered in topological order as TF.js will create them.
  const callsOf = new Map<TopologyLayer, TopologyNode[]>(layers.map((layer) => [layer, []]));
  for (const node of calls) {
    const own = callsOf.get(node.layer)!;
    const nodeIndex = own.length + (isModelClass(node.layer.className) ? 1 : 0);
    own.push(node);
    for (const output of node.outputs) refs.set(output.key, [node.layer.name, nodeIndex, output.tensorIndex]);
  }
  const refOf = (tensor: TopologyTensor): TensorRef => refs.get(tensor.key)!;
  const entries = layers.map((layer) => ({
    name: layer.name,
    class_name: layer.className,
    config: layer.entry.config,
    inbound_nodes: callsOf
      .get(layer)!
      .map((node) => node.inputs.map((input) => [...refOf(input), node.kwargs])),
  }));
  const topology = (source.modelTopology ?? {}) as Record<string, unknown>;
  const envelope = typeof topology.model_config === 'object' ? topology : {};
  const versions = Object.fromEntries(
    ['keras_version', 'backend']
      .map((key) => [key, envelope[key] ?? topology[key]] as const)
      .filter(([, value]) => value !== undefined),
  );
  return {
    json: {
      format: source.format ?? 'layers-model',
      generatedBy: source.generatedBy ?? 'dinfer',
      convertedBy: source.convertedBy ?? null,
      modelTopology: {
        class_name: 'Model',
        config: {
          name: `${graph.name}_stage${request.index}`,
          layers: [...placeholders, ...entries],
          input_layers: placeholders.map((p) => [p.name, 0, 0]),
          output_layers: request.outputs.map(refOf),
        },
        ...versions,
      },
    },
    layers,
  };
}
