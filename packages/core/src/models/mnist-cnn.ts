/**
 * The small MNIST digit classifier shipped (trained) in `assets/mnist-cnn/`.
 *
 * @module
 */
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { DinferError, DinferErrorCode } from '../errors.js';
import { DEFAULT_MODEL_SEED } from './options.js';
import { fillSeededWeights } from './seeded-weights.js';

/** Options for {@link mnistCnn}. */
export interface MnistCnnOptions {
  /** Seed of the initial (untrained) weights; default 1. */
  readonly seed?: number;
}

/**
 * Builds the untrained MNIST CNN: `conv1` (8 3x3, ReLU) - `pool1` (2x2) - `conv2` (16 3x3,
 * ReLU) - `pool2` (2x2) - `flatten` - `dense1` (64, ReLU) - `predictions` (10, softmax), input
 * `[28, 28, 1]` in `[0, 1]`; 27,562 parameters (about 110 kB of float32 weights), with seeded
 * initial weights. The trained weights ship in `assets/mnist-cnn/` (see
 * {@link mnistCnnAssetPath}); `scripts/train-mnist` produces them.
 *
 * @throws DinferError `DINFER_ERR_INVALID_ARGUMENT` when the seed is not an integer.
 */
export function mnistCnn(options: MnistCnnOptions = {}): tf.LayersModel {
  const seed = options.seed ?? DEFAULT_MODEL_SEED;
  if (!Number.isInteger(seed)) {
    throw new DinferError(
      DinferErrorCode.INVALID_ARGUMENT,
      `mnistCnn: seed must be an integer, got ${seed}`,
      {
        details: { seed },
      },
    );
  }
  const model = tf.sequential({
    name: 'mnist_cnn',
    layers: [
      tf.layers.conv2d({
        inputShape: [28, 28, 1],
        filters: 8,
        kernelSize: 3,
        activation: 'relu',
        name: 'conv1',
        kernelInitializer: 'zeros',
      }),
      tf.layers.maxPooling2d({ poolSize: 2, name: 'pool1' }),
      tf.layers.conv2d({
        filters: 16,
        kernelSize: 3,
        activation: 'relu',
        name: 'conv2',
        kernelInitializer: 'zeros',
      }),
      tf.layers.maxPooling2d({ poolSize: 2, name: 'pool2' }),
      tf.layers.flatten({ name: 'flatten' }),
      tf.layers.dense({ units: 64, activation: 'relu', name: 'dense1', kernelInitializer: 'zeros' }),
      tf.layers.dense({ units: 10, activation: 'softmax', name: 'predictions', kernelInitializer: 'zeros' }),
    ],
  });
  fillSeededWeights(model, { seed });
  return model;
}

/** Absolute path of the shipped, trained MNIST CNN's `model.json` (`assets/mnist-cnn/`). */
export function mnistCnnAssetPath(): string {
  // Both src/models/ and dist/models/ sit two levels below the package root.
  return fileURLToPath(new URL('../../assets/mnist-cnn/model.json', import.meta.url));
}
