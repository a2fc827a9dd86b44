/**
 * The Keras model topology of a `model.json` (`modelTopology`), read and checked into plain
 * typed data: a functional model (`Model` / `Functional`: layers with their inbound nodes, the
 * model's input and output tensors) or a `Sequential` stack. Nested models are layers whose
 * config is itself such a topology. Keys stay as stored (Python's snake_case).
 *
 * @module
 */
import { DinferError, DinferErrorCode } from '../errors.js';

/** A reference to one tensor: the `tensorIndex`-th output of node `nodeIndex` of `layer`. */
export interface KerasTensorRef {
  readonly layer: string;
  /** The node's index among the layer's calls (a nested model's own node is 0). */
  readonly nodeIndex: number;
  readonly tensorIndex: number;
}

/** One input of a layer call: a tensor and the call's keyword arguments. */
export interface KerasInbound extends KerasTensorRef {
  readonly kwargs: Readonly<Record<string, unknown>>;
}

/** One layer of a topology. */
export interface KerasLayerEntry {
  readonly name: string;
  readonly className: string;
  /** The layer's config as stored. */
  readonly config: Readonly<Record<string, unknown>>;
  /** Its calls (functional models only), each the list of tensors it reads. */
  readonly inboundNodes: readonly (readonly KerasInbound[])[];
}

/** A functional model: a graph of layer calls. */
export interface FunctionalTopology {
  readonly kind: 'functional';
  /** `Model` or `Functional`. */
  readonly className: string;
  readonly name: string;
  readonly layers: readonly KerasLayerEntry[];
  readonly inputs: readonly KerasTensorRef[];
  readonly outputs: readonly KerasTensorRef[];
}

/** A stack of layers, each reading the previous one's output. */
export interface SequentialTopology {
  readonly kind: 'sequential';
  readonly className: 'Sequential';
  readonly name: string;
  readonly layers: readonly KerasLayerEntry[];
}

/** A model topology. */
export type KerasTopology = FunctionalTopology | SequentialTopology;

const FUNCTIONAL_CLASSES = new Set(['Model', 'Functional']);

/** True when `className` names a model (a layer that is itself a topology). */
export function isModelClass(className: string): boolean {
  return FUNCTIONAL_CLASSES.has(className) || className === 'Sequential';
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const isIndex = (value: unknown): value is number =>
  typeof value === 'number' && Number.isInteger(value) && value >= 0;

/**
 * Reads a `modelTopology` (or a nested model's `{class_name, config}`), unwrapping a
 * `model_config` envelope.
 *
 * @param where Names the document in messages (its path, and the nested model's name).
 * @throws DinferError MODEL_CORRUPT naming the first malformed field; MODEL_UNSUPPORTED for a
 *   topology that is not a Keras model or uses a node format TF.js does not read.
 */
export function parseKerasTopology(value: unknown, where: string): KerasTopology {
  const corrupt = (field: string, why: string) =>
    new DinferError(DinferErrorCode.MODEL_CORRUPT, `${where}: modelTopology ${field} ${why}`, {
      details: { path: where, field },
    });
  if (!isRecord(value)) throw corrupt('(root)', 'must be an object');
  const root = isRecord(value.model_config) ? value.model_config : value;
  const className = root.class_name;
  if (typeof className !== 'string' || !isModelClass(className)) {
    throw new DinferError(
      DinferErrorCode.MODEL_UNSUPPORTED,
      `${where}: modelTopology is a ${JSON.stringify(className)}, not a Keras Model, Functional or Sequential`,
      { details: { path: where, className } },
    );
  }
  const config = root.config;
  if (className === 'Sequential') {
    const list = Array.isArray(config) ? config : isRecord(config) ? config.layers : undefined;
    if (!Array.isArray(list)) throw corrupt('config.layers', 'must be an array');
    const name = isRecord(config) && typeof config.name === 'string' ? config.name : 'sequential';
    const layers = list.map((layer, i) => layerEntry(layer, `config.layers[${i}]`, corrupt, false));
    return { kind: 'sequential', className, name, layers };
  }
  if (!isRecord(config)) throw corrupt('config', 'must be an object');
  if (typeof config.name !== 'string') throw corrupt('config.name', 'must be a string');
  if (!Array.isArray(config.layers)) throw corrupt('config.layers', 'must be an array');
  const layers = config.layers.map((layer, i) => layerEntry(layer, `config.layers[${i}]`, corrupt, true));
  const refs = (field: string): KerasTensorRef[] => {
    const list = config[field];
    if (!Array.isArray(list) || list.length === 0)
      throw corrupt(`config.${field}`, 'must be a non-empty array');
    return list.map((ref, i) => tensorRef(ref, `config.${field}[${i}]`, corrupt));
  };
  return {
    kind: 'functional',
    className,
    name: config.name,
    layers,
    inputs: refs('input_layers'),
    outputs: refs('output_layers'),
  };
}

function tensorRef(
  value: unknown,
  field: string,
  corrupt: (field: string, why: string) => DinferError,
): KerasTensorRef {
  if (!Array.isArray(value) || value.length < 3)
    throw corrupt(field, 'must be [layerName, nodeIndex, tensorIndex]');
  const [layer, nodeIndex, tensorIndex] = value as unknown[];
  if (typeof layer !== 'string' || !isIndex(nodeIndex) || !isIndex(tensorIndex)) {
    throw corrupt(field, 'must be [layerName, nodeIndex, tensorIndex]');
  }
  return { layer, nodeIndex, tensorIndex };
}

function layerEntry(
  value: unknown,
  field: string,
  corrupt: (field: string, why: string) => DinferError,
  functional: boolean,
): KerasLayerEntry {
  if (!isRecord(value)) throw corrupt(field, 'must be an object');
  const { class_name: className, config } = value;
  if (typeof className !== 'string' || className.length === 0)
    throw corrupt(`${field}.class_name`, 'must be a string');
  if (!isRecord(config) && !(className === 'Sequential' && Array.isArray(config))) {
    throw corrupt(`${field}.config`, 'must be an object');
  }
  const configName = isRecord(config) ? config.name : undefined;
  const name = typeof value.name === 'string' ? value.name : configName;
  if (typeof name !== 'string' || name.length === 0)
    throw corrupt(`${field}.name`, 'must be a non-empty string');
  const inboundNodes: KerasInbound[][] = [];
  if (functional) {
    const nodes = value.inbound_nodes;
    if (!Array.isArray(nodes)) throw corrupt(`${field}.inbound_nodes`, 'must be an array');
    nodes.forEach((node, n) => {
      const where = `${field}.inbound_nodes[${n}]`;
      if (!Array.isArray(node)) {
        throw new DinferError(
          DinferErrorCode.MODEL_UNSUPPORTED,
          `${where}: inbound nodes must be lists of [layer, node, tensor, kwargs] (the Keras 2 / TF.js format)`,
          { details: { field: where } },
        );
      }
      inboundNodes.push(
        node.map((input, i) => {
          const ref = tensorRef(input, `${where}[${i}]`, corrupt);
          const kwargs = (input as unknown[])[3];
          return { ...ref, kwargs: isRecord(kwargs) ? kwargs : {} };
        }),
      );
    });
  }
  const stored = isRecord(config) ? config : { name, layers: config };
  return { name, className, config: stored, inboundNodes };
}

/** The topology of a nested model layer (its config is a model's). */
export function nestedTopology(entry: KerasLayerEntry, where: string): KerasTopology {
  return parseKerasTopology(
    { class_name: entry.className, config: entry.config },
    `${where} > ${entry.name}`,
  );
}
