/**
 * Fills a LayersModel's weights from a seeded generator, fast (plain Float32Arrays, one
 * `setWeights` per layer) and reproducibly (each weight has its own stream derived from the
 * seed and the weight's name, so generation order does not matter).
 *
 * @module
 */

import * as tf from '@tensorflow/tfjs';
import { DinferError, DinferErrorCode } from '../errors.js';
import { deriveSeed, seededRandom } from './seeded-random.js';

/** Options for {@link fillSeededWeights}. */
export interface SeededWeightsOptions {
  /** Base seed; the same seed gives bit-identical weights. */
  readonly seed: number;
  /**
   * Multiplier for the `gamma` of a BatchNormalization layer, by layer name (default 1). Use a
   * value below 1 on the last normalisation of a residual branch so the residual sums stay
   * bounded through deep networks.
   */
  readonly gammaScale?: (layerName: string) => number;
  /** Multiplier for Dense kernels (default 1, i.e. variance `1 / fanIn`). */
  readonly denseScale?: number;
}

function product(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** The short weight name (`kernel`, `gamma`, ...) of a layer variable. */
function shortName(variable: tf.LayerVariable): string {
  const name = variable.originalName;
  return name.slice(name.lastIndexOf('/') + 1);
}

/** The uniform range `[low, high)` for one weight of one layer. */
function rangeFor(
  layer: tf.layers.Layer,
  weight: string,
  shape: readonly number[],
  options: SeededWeightsOptions,
): readonly [number, number] {
  const cls = layer.getClassName();
  if (cls === 'Conv2D' && weight === 'kernel') {
    // He-uniform: variance 2 / fanIn keeps the second moment steady through conv + ReLU.
    const fanIn = (shape[0] ?? 1) * (shape[1] ?? 1) * (shape[2] ?? 1);
    const limit = Math.sqrt(6 / fanIn);
    return [-limit, limit];
  }
  if (cls === 'DepthwiseConv2D' && weight === 'depthwise_kernel') {
    const fanIn = (shape[0] ?? 1) * (shape[1] ?? 1);
    const limit = Math.sqrt(6 / fanIn);
    return [-limit, limit];
  }
  if (cls === 'Dense' && weight === 'kernel') {
    const limit = Math.sqrt(3 / (shape[0] ?? 1)) * (options.denseScale ?? 1);
    return [-limit, limit];
  }
  if (weight === 'bias') return [-0.05, 0.05];
  if (cls === 'BatchNormalization') {
    switch (weight) {
      case 'gamma': {
        const scale = options.gammaScale?.(layer.name) ?? 1;
        return [0.8 * scale, 1.2 * scale];
      }
      case 'beta':
        return [-0.1, 0.1];
      case 'moving_mean':
        return [-0.1, 0.1];
      case 'moving_variance':
        return [0.8, 1.2];
    }
  }
  throw new DinferError(
    DinferErrorCode.INVALID_ARGUMENT,
    `no seeded initialisation rule for weight "${weight}" of ${cls} layer "${layer.name}"`,
    { details: { layer: layer.name, className: cls, weight } },
  );
}

/**
 * Replaces every weight of `model` with seeded values: He-uniform convolution kernels, LeCun
 * uniform dense kernels, small biases, and BatchNormalization parameters and moving statistics
 * near the identity. Handles Conv2D, DepthwiseConv2D, Dense and BatchNormalization layers;
 * any other weighted layer raises `DINFER_ERR_INVALID_ARGUMENT`.
 */
export function fillSeededWeights(model: tf.LayersModel, options: SeededWeightsOptions): void {
  if (!Number.isInteger(options.seed)) {
    throw new DinferError(DinferErrorCode.INVALID_ARGUMENT, `seed must be an integer, got ${options.seed}`, {
      details: { seed: options.seed },
    });
  }
  for (const layer of model.layers) {
    if (layer.weights.length === 0) continue;
    const values = layer.weights.map((variable) => {
      const weight = shortName(variable);
      const shape = variable.shape as number[];
      const [low, high] = rangeFor(layer, weight, shape, options);
      const random = seededRandom(deriveSeed(options.seed, `${layer.name}/${weight}`));
      const data = random.fillUniform(new Float32Array(product(shape)), low, high);
      return tf.tensor(data, shape, 'float32');
    });
    layer.setWeights(values);
    tf.dispose(values);
  }
}
