/**
 * Tensor parallelism for wide `Dense` layers: a layer too big (or too slow) for one worker is
 * split by output units into `k` shards, each a plain TF.js model holding its slice of the
 * kernel and bias. The shards run on different workers at once; their outputs, concatenated
 * in shard order along the last axis with the layer's activation applied after the
 * concatenation (softmax needs the whole vector), equal the layer's own output.
 *
 * @module
 */
import * as tf from '@tensorflow/tfjs';
import { DinferError, DinferErrorCode } from '../errors.js';

/** One shard of a split `Dense` layer. */
export interface DenseShard {
  /** Position of the shard, from 0; outputs concatenate in this order. */
  readonly index: number;
  /** The output units `[start, end)` of the original layer this shard computes. */
  readonly units: readonly [start: number, end: number];
  /** A standalone model: input of the layer's input shape, one linear `Dense` of `end - start` units. */
  readonly model: tf.LayersModel;
  /** Bytes of the shard's weights (its kernel and bias slices). */
  readonly weightBytes: number;
}

/** A `Dense` layer split into {@link DenseShard}s, with the step that joins their outputs. */
export interface DenseSplit {
  /** The split layer's name. */
  readonly layer: string;
  /** Number of shards. */
  readonly degree: number;
  /** The layer's activation (`linear` for none), applied by {@link DenseSplit.combine}. */
  readonly activation: string;
  readonly shards: readonly DenseShard[];
  /**
   * Joins the shards' outputs (in shard order): concatenates them along the last axis and
   * applies the layer's activation. The caller disposes the result; the inputs are left as
   * they are.
   */
  combine(outputs: readonly tf.Tensor[]): tf.Tensor;
  /** Frees the shards' weights. */
  dispose(): void;
}

interface DenseLike {
  readonly units: number;
  readonly useBias: boolean;
  readonly activation: string;
}

function denseConfig(layer: tf.layers.Layer): DenseLike {
  if (layer.getClassName() !== 'Dense') {
    throw new DinferError(
      DinferErrorCode.PARTITION_UNSUPPORTED,
      `layer "${layer.name}" is a ${layer.getClassName()}; only Dense layers split by output units`,
      { details: { layer: layer.name } },
    );
  }
  const config = layer.getConfig() as {
    units?: unknown;
    use_bias?: unknown;
    useBias?: unknown;
    activation?: unknown;
  };
  const units = config.units;
  if (typeof units !== 'number' || !Number.isInteger(units) || units < 1) {
    throw new DinferError(DinferErrorCode.PARTITION_UNSUPPORTED, `layer "${layer.name}" has no unit count`, {
      details: { layer: layer.name },
    });
  }
  const activation = typeof config.activation === 'string' ? config.activation : 'linear';
  const useBias = (config.useBias ?? config.use_bias) !== false;
  return { units, useBias, activation };
}

/**
 * Output units of each of `degree` shards of a layer with `units` units: contiguous, in
 * order, sizes differing by at most one.
 */
export function shardUnits(units: number, degree: number): [start: number, end: number][] {
  const out: [number, number][] = [];
  let start = 0;
  for (let i = 0; i < degree; i++) {
    const size = Math.floor(units / degree) + (i < units % degree ? 1 : 0);
    out.push([start, start + size]);
    start += size;
  }
  return out;
}

/**
 * Splits a built `Dense` layer by output units into `degree` shards (see the module doc). The
 * layer itself is not changed; every shard holds copies of its slices.
 *
 * @throws DinferError PARTITION_UNSUPPORTED for a layer that is not a built `Dense` (or whose
 *   activation TF.js does not know), or
 *   INVALID_ARGUMENT for a degree that is not an integer in `[2, units]`.
 */
export function splitDense(layer: tf.layers.Layer, degree: number): DenseSplit {
  const { units, useBias, activation } = denseConfig(layer);
  if (!Number.isInteger(degree) || degree < 2 || degree > units) {
    throw new DinferError(
      DinferErrorCode.INVALID_ARGUMENT,
      `layer "${layer.name}" has ${units} units: its split degree must be an integer in [2, ${units}], got ${degree}`,
      { details: { layer: layer.name, degree, units } },
    );
  }
  const weights = layer.getWeights();
  const kernel = weights[0];
  if (kernel === undefined || kernel.shape.length !== 2 || kernel.shape[1] !== units) {
    throw new DinferError(
      DinferErrorCode.PARTITION_UNSUPPORTED,
      `layer "${layer.name}" is not built (no kernel)`,
      {
        details: { layer: layer.name },
      },
    );
  }
  const inputs = kernel.shape[0] as number;
  // The shard models take what the layer takes (a Dense maps the last axis of any rank).
  const applied =
    layer.inboundNodes.length > 0 ? (layer.getInputAt(0) as tf.SymbolicTensor).shape : undefined;
  const shape = applied === undefined ? [inputs] : applied.slice(1).map((d) => d ?? null);
  const bias = useBias ? weights[1] : undefined;
  const shards = shardUnits(units, degree).map(([start, end], index): DenseShard => {
    const width = end - start;
    const input = tf.input({ shape: shape as number[], name: `${layer.name}_shard${index}_input` });
    const dense = tf.layers.dense({
      units: width,
      useBias,
      activation: 'linear',
      name: `${layer.name}_shard${index}`,
    });
    const model = tf.model({
      inputs: input,
      outputs: dense.apply(input) as tf.SymbolicTensor,
      name: `${layer.name}_shard${index}`,
    });
    const slices = tf.tidy(() => {
      const k = tf.slice(kernel, [0, start], [inputs, width]);
      return bias === undefined ? [k] : [k, tf.slice(bias, [start], [width])];
    });
    dense.setWeights(slices);
    tf.dispose(slices);
    return { index, units: [start, end], model, weightBytes: (inputs + (useBias ? 1 : 0)) * width * 4 };
  });
  const activate =
    activation === 'linear' ? undefined : tf.layers.activation({ activation: activation as never });
  return {
    layer: layer.name,
    degree,
    activation,
    shards,
    combine(outputs) {
      if (outputs.length !== degree) {
        throw new DinferError(
          DinferErrorCode.INVALID_ARGUMENT,
          `layer "${layer.name}" was split in ${degree}; got ${outputs.length} shard outputs`,
        );
      }
      return tf.tidy(() => {
        const joined = tf.concat([...outputs], -1);
        return activate === undefined ? joined : (activate.apply(joined) as tf.Tensor);
      });
    },
    dispose() {
      for (const shard of shards) shard.model.dispose();
    },
  };
}
