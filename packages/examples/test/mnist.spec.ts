import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { DinferErrorCode, isDinferError, loadLayersModel } from '@dinfer/core';
import {
  accuracy,
  MNIST_TEST_PER_DIGIT,
  mnistCnn,
  mnistCnnAssetPath,
  mnistTestSet,
  mnistTrainCapacity,
  mnistTrainSet,
  seededRandom,
} from '@dinfer/core/models';
import { initBackend } from '@dinfer/core/node';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { conv2dFilterGrad, registerConv2DFilterGradKernel } from '../src/models/conv2d-filter-grad.js';

const packageRoot = fileURLToPath(new URL('..', import.meta.url));

function pixelsKey(data: Float32Array, i: number): string {
  return Array.from(data.subarray(i * 784, (i + 1) * 784)).join(',');
}

beforeAll(async () => {
  await initBackend();
});

describe('MNIST data', () => {
  it('gives balanced, interleaved sets in [0, 1], with no test digit in the training pool', () => {
    const test = mnistTestSet(10 * MNIST_TEST_PER_DIGIT);
    const train = mnistTrainSet(mnistTrainCapacity());
    try {
      expect(test.inputs.shape).toEqual([1500, 28, 28, 1]);
      expect(Array.from(test.labels.slice(0, 12))).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]);
      expect(mnistTrainCapacity()).toBe(10 * (863 - MNIST_TEST_PER_DIGIT));
      const testData = test.inputs.dataSync() as Float32Array;
      const trainData = train.inputs.dataSync() as Float32Array;
      expect(Math.min(...testData.subarray(0, 784 * 20))).toBeGreaterThanOrEqual(0);
      expect(Math.max(...testData.subarray(0, 784 * 20))).toBeLessThanOrEqual(1);
      const trainKeys = new Set<string>();
      for (let i = 0; i < train.labels.length; i++) trainKeys.add(pixelsKey(trainData, i));
      let overlap = 0;
      for (let i = 0; i < test.labels.length; i++) if (trainKeys.has(pixelsKey(testData, i))) overlap++;
      expect(overlap).toBe(0);
      // A prefix is the same digits in the same order.
      const prefix = mnistTestSet(10);
      expect(Array.from(prefix.inputs.dataSync())).toEqual(Array.from(testData.subarray(0, 7840)));
      prefix.inputs.dispose();
    } finally {
      test.inputs.dispose();
      train.inputs.dispose();
    }
  });

  it('rejects counts out of range', () => {
    for (const count of [0, 1501, 2.5]) {
      let error: unknown;
      try {
        mnistTestSet(count);
      } catch (e) {
        error = e;
      }
      expect(isDinferError(error, DinferErrorCode.INVALID_ARGUMENT)).toBe(true);
    }
    expect(() => mnistTrainSet(mnistTrainCapacity() + 1)).toThrow(/count/);
  });
});

describe('the shipped MNIST CNN', () => {
  it('loads with plain TF.js artifacts, is small, and scores >= 95% on held-out digits', async () => {
    const assetPath = mnistCnnAssetPath();
    const model = await loadLayersModel(assetPath);
    const weights = await stat(path.join(path.dirname(assetPath), 'group1-shard1of1.bin'));
    expect(weights.size).toBe(27_562 * 4);
    expect(weights.size).toBeLessThan(1_000_000);
    expect(model.layers.map((l) => l.name)).toEqual([
      'conv1',
      'pool1',
      'conv2',
      'pool2',
      'flatten',
      'dense1',
      'predictions',
    ]);
    const before = tf.memory().numTensors;
    const test = mnistTestSet(10 * MNIST_TEST_PER_DIGIT);
    const probabilities = model.predict(test.inputs) as tf.Tensor;
    const score = accuracy(probabilities, test.labels);
    tf.dispose([probabilities, test.inputs]);
    expect(tf.memory().numTensors).toBe(before);
    expect(score).toBeGreaterThanOrEqual(0.95);
    // An untrained network of the same shape is near chance: the accuracy comes from training.
    const untrained = mnistCnn();
    const few = mnistTestSet(500);
    const guess = untrained.predict(few.inputs) as tf.Tensor;
    expect(accuracy(guess, few.labels)).toBeLessThan(0.3);
    tf.dispose([guess, few.inputs]);
    untrained.dispose();
    model.dispose();
  });

  it('accuracy() counts argmax matches', () => {
    const probs = tf.tensor2d([
      [0.1, 0.9],
      [0.8, 0.2],
      [0.3, 0.7],
    ]);
    expect(accuracy(probs, Int32Array.from([1, 0, 0]))).toBeCloseTo(2 / 3, 10);
    expect(() => accuracy(probs, Int32Array.from([1]))).toThrow(/expected probabilities/);
    probs.dispose();
  });
});

describe('the JavaScript Conv2DBackpropFilter kernel', () => {
  /** dL/dW of L = sum(conv2d(x, w) * dy), by slices and matMul only (no conv kernels). */
  function referenceFilterGrad(
    x: tf.Tensor4D,
    dy: tf.Tensor4D,
    filter: readonly [number, number, number, number],
    stride: number,
    padTop: number,
    padLeft: number,
  ): tf.Tensor {
    return tf.tidy(() => {
      const [fh, fw, ci, co] = filter;
      const [b, oh, ow] = dy.shape;
      const padded = tf.pad(x, [
        [0, 0],
        [padTop, fh + stride * oh],
        [padLeft, fw + stride * ow],
        [0, 0],
      ]);
      const dy2 = dy.reshape([b * oh * ow, co]);
      const rows: tf.Tensor[] = [];
      for (let r = 0; r < fh; r++) {
        for (let c = 0; c < fw; c++) {
          const patch = tf.stridedSlice(
            padded,
            [0, r, c, 0],
            [b, r + stride * oh, c + stride * ow, ci],
            [1, stride, stride, 1],
          );
          rows.push(tf.matMul(patch.reshape([b * oh * ow, ci]), dy2, true, false));
        }
      }
      return tf.stack(rows).reshape([fh, fw, ci, co]);
    });
  }

  const cases = [
    { name: 'stride 1, valid', shape: [2, 9, 8, 3], filter: [3, 3, 3, 5], stride: 1, pad: 'valid' },
    { name: 'stride 2, same', shape: [2, 9, 10, 4], filter: [3, 3, 4, 6], stride: 2, pad: 'same' },
    { name: 'stride 2, 1x1', shape: [1, 8, 8, 5], filter: [1, 1, 5, 7], stride: 2, pad: 'valid' },
  ] as const;

  for (const spec of cases) {
    it(`matches an independent slice+matMul computation (${spec.name})`, () => {
      registerConv2DFilterGradKernel(tf.getBackend() as 'wasm' | 'cpu');
      const random = seededRandom(9);
      const count = (s: readonly number[]) => s.reduce((a, v) => a * v, 1);
      const x = tf.tensor4d(random.fillUniform(new Float32Array(count(spec.shape)), -1, 1), [...spec.shape]);
      const w = tf.tensor4d(random.fillUniform(new Float32Array(count(spec.filter)), -1, 1), [
        ...spec.filter,
      ]);
      const y = tf.conv2d(x, w, spec.stride, spec.pad);
      const dy = tf.tensor4d(random.fillUniform(new Float32Array(y.size), -1, 1), y.shape);
      // Through the registered kernel, via TF.js autodiff.
      const grad = tf.grad((filter: tf.Tensor) =>
        tf.sum(tf.mul(tf.conv2d(x, filter as tf.Tensor4D, spec.stride, spec.pad), dy)),
      );
      const got = grad(w);
      const info = tf.backend_util.computeConv2DInfo(
        [...spec.shape],
        [...spec.filter],
        spec.stride,
        1,
        spec.pad,
      );
      const want = referenceFilterGrad(x, dy, spec.filter, spec.stride, info.padInfo.top, info.padInfo.left);
      const direct = conv2dFilterGrad(
        x.dataSync() as Float32Array,
        [...spec.shape],
        dy.dataSync() as Float32Array,
        {
          ...info,
          padTop: info.padInfo.top,
          padLeft: info.padInfo.left,
        },
      );
      const wantData = want.dataSync();
      const scale = Math.max(1, ...Array.from(wantData, Math.abs));
      const gotData = got.dataSync();
      let maxDiff = 0;
      for (let i = 0; i < wantData.length; i++) {
        maxDiff = Math.max(
          maxDiff,
          Math.abs(gotData[i]! - wantData[i]!),
          Math.abs(direct[i]! - wantData[i]!),
        );
      }
      expect(got.shape).toEqual([...spec.filter]);
      expect(maxDiff).toBeLessThanOrEqual(1e-5 * scale);
      tf.dispose([x, w, y, dy, got, want]);
    });
  }
});

describe('train-mnist script', () => {
  it('trains a small run end to end and writes loadable artifacts', async () => {
    const script = path.join(packageRoot, 'dist', 'scripts', 'train-mnist.js');
    expect(existsSync(script), 'build the package first (tsc -p tsconfig.build.json)').toBe(true);
    const out = await mkdtemp(path.join(tmpdir(), 'dinfer-mnist-'));
    try {
      const { stdout } = await promisify(execFile)(
        process.execPath,
        [script, '--out', out, '--train', '300', '--epochs', '1', '--seed', '3'],
        { cwd: packageRoot, timeout: 60_000 },
      );
      expect(stdout).toMatch(/epoch 1\/1: loss \d/);
      const accuracyLine = stdout.match(/held-out test accuracy ([\d.]+)%/);
      expect(accuracyLine).not.toBeNull();
      const model = await loadLayersModel(path.join(out, 'model.json'));
      expect(model.countParams()).toBe(27_562);
      const test = mnistTestSet(10 * MNIST_TEST_PER_DIGIT);
      const probs = model.predict(test.inputs) as tf.Tensor;
      // The script's reported accuracy is the one we measure on the same held-out digits.
      expect(accuracy(probs, test.labels) * 100).toBeCloseTo(Number(accuracyLine![1]), 1);
      tf.dispose([probs, test.inputs]);
      model.dispose();
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  });
});
