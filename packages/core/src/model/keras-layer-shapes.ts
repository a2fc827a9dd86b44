/**
 * Output shapes of one Keras layer call, computed from the layer's config alone: the layer
 * object is made from its config through TF.js's serialization registry (the classes
 * `tf.loadLayersModel` uses, custom ones registered with `tf.serialization.registerClass`
 * included) and asked for `computeOutputShape`. The layer is never built, so no weight is
 * allocated: shapes of a model of any size cost nothing but its `model.json`.
 *
 * @module
 */
import * as tf from '@tensorflow/tfjs';
import { DinferError, DinferErrorCode } from '../errors.js';
import type { SymbolicShape } from './types.js';

type ConfigValue = unknown;

/**
 * Keys whose string items are layer names, kept as they are (TF.js's `convertPythonicToTs`
 * does the same).
 */
const NAME_LISTS = new Set(['inboundNodes', 'outputLayers', 'inputLayers']);

function toCamelCase(identifier: string): string {
  if (identifier.length <= 1 || !identifier.includes('_')) return identifier;
  return identifier.replace(/[_]+(\w|$)/g, (_match, next: string) => next.toUpperCase());
}

/**
 * Converts a config as `model.json` stores it (Python's snake_case keys and values) into the
 * form TF.js layer constructors take, exactly as `tf.loadLayersModel` does before building.
 */
export function pythonicToTs(value: ConfigValue, key?: string): ConfigValue {
  if (value === null || value === undefined) return value;
  if (typeof value === 'string') return toCamelCase(value);
  if (typeof value === 'number' || typeof value === 'boolean') return value;
  if (Array.isArray(value)) {
    return value.map((item, i) =>
      key !== undefined && NAME_LISTS.has(key) && i === 0 && typeof item === 'string'
        ? item
        : pythonicToTs(item, key),
    );
  }
  const out: Record<string, ConfigValue> = {};
  for (const [pythonicKey, item] of Object.entries(value as Record<string, ConfigValue>)) {
    if (pythonicKey === 'name' && typeof item === 'string') {
      out[pythonicKey] = item;
    } else {
      const tsKey = toCamelCase(pythonicKey);
      out[tsKey] = pythonicToTs(item, tsKey);
    }
  }
  return out;
}

type LayerFromConfig = (cls: unknown, config: tf.serialization.ConfigDict) => tf.layers.Layer;

/**
 * Makes the (unbuilt) layer object `className` from its stored config.
 *
 * @throws DinferError MODEL_UNSUPPORTED for a class TF.js does not know (register custom
 *   layers with `tf.serialization.registerClass` first), MODEL_CORRUPT for a config the
 *   class refuses.
 */
export function unbuiltLayer(
  className: string,
  config: Record<string, unknown>,
  where: string,
): tf.layers.Layer {
  const entry = tf.serialization.SerializationMap.getMap().classNameMap[className] as
    | [unknown, LayerFromConfig]
    | undefined;
  if (entry === undefined) {
    throw new DinferError(
      DinferErrorCode.MODEL_UNSUPPORTED,
      `${where}: unknown layer class "${className}" (register custom layers with tf.serialization.registerClass)`,
      { details: { className } },
    );
  }
  const [cls, fromConfig] = entry;
  try {
    return fromConfig(cls, pythonicToTs(config) as tf.serialization.ConfigDict);
  } catch (error) {
    throw new DinferError(
      DinferErrorCode.MODEL_CORRUPT,
      `${where}: the ${className} config is not valid: ${(error as Error).message}`,
      { details: { className }, cause: error },
    );
  }
}

/**
 * Output shapes of calling `layer` on tensors of `inputShapes`, as `layer.apply` computes
 * them for symbolic inputs (one shape for one input, the list for several).
 *
 * @throws DinferError PARTITION_UNSUPPORTED when the layer cannot tell its output shape
 *   without being built, or the shapes do not fit it.
 */
export function callOutputShapes(
  layer: tf.layers.Layer,
  inputShapes: readonly SymbolicShape[],
  where: string,
): SymbolicShape[] {
  const argument = inputShapes.length === 1 ? [...inputShapes[0]!] : inputShapes.map((s) => [...s]);
  let result: tf.Shape | tf.Shape[];
  try {
    result = layer.computeOutputShape(argument as tf.Shape | tf.Shape[]);
  } catch (error) {
    throw new DinferError(
      DinferErrorCode.PARTITION_UNSUPPORTED,
      `${where}: cannot compute the output shape of ${layer.getClassName()} layer "${layer.name}" on [${inputShapes
        .map((s) => `[${s.join(', ')}]`)
        .join(', ')}]: ${(error as Error).message}`,
      { details: { layer: layer.name, className: layer.getClassName() }, cause: error },
    );
  }
  const several = Array.isArray(result) && result.length > 0 && Array.isArray(result[0]);
  const shapes = (several ? result : [result]) as tf.Shape[];
  return shapes.map((shape) => shape.map((d) => (d === undefined ? null : d)));
}
