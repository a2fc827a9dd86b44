/**
 * The reference the cluster tests check answers against: the MNIST CNN's test digits and the
 * whole model's local `predict` outputs for them.
 *
 * @module
 */

import { loadExampleModel, mnistTestSet } from '@dinfer/core/models';
import { initBackend } from '@dinfer/core/node';
import type * as tf from '@tensorflow/tfjs';

/** Relative tolerance between a cluster's answers and the local `predict`. */
export const MNIST_RTOL = 1e-3;

const PIXELS = 28 * 28;
const CLASSES = 10;

/** MNIST digits and the whole model's answers to them. */
export interface MnistReference {
  /** The model's `model.json`, for a master to serve. */
  readonly modelJsonPath: string;
  /** The model's input name. */
  readonly inputName: string;
  /** How many digits there are; digit `i` means digit `i % count`. */
  readonly count: number;
  /** The pixels of digit `i` (`[28, 28, 1]`, row-major). */
  pixels(i: number): Float32Array;
  /** The whole model's 10 outputs for digit `i`. */
  expected(i: number): Float32Array;
}

/** Loads the MNIST CNN and `count` test digits, and predicts them locally. */
export async function loadMnistReference(count: number): Promise<MnistReference> {
  await initBackend();
  const example = await loadExampleModel('mnist-cnn');
  const test = mnistTestSet(count);
  const probs = example.model.predict(test.inputs) as tf.Tensor;
  const expected = probs.dataSync() as Float32Array;
  const pixels = test.inputs.dataSync() as Float32Array;
  const inputName = example.model.inputs[0]!.name;
  probs.dispose();
  test.inputs.dispose();
  example.model.dispose();
  const index = (i: number) => i % count;
  return {
    modelJsonPath: example.modelJsonPath,
    inputName,
    count,
    pixels: (i) => pixels.subarray(index(i) * PIXELS, (index(i) + 1) * PIXELS),
    expected: (i) => expected.subarray(index(i) * CLASSES, (index(i) + 1) * CLASSES),
  };
}
