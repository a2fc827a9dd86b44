import { modelFromBlobs, stageToBlobs, type WeightQuantization } from '@dinfer/core';
import { accuracy, loadExampleModel, mnistTestSet } from '@dinfer/core/models';
import { initBackend } from '@dinfer/core/node';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

let model: tf.LayersModel;
let inputs: tf.Tensor4D;
let labels: Int32Array;
let reference: Int32Array;
let referenceAccuracy: number;

beforeAll(async () => {
  await initBackend();
  model = (await loadExampleModel('mnist-cnn')).model;
  const set = mnistTestSet(1500);
  inputs = set.inputs;
  labels = set.labels;
  const probabilities = model.predict(inputs) as tf.Tensor;
  referenceAccuracy = accuracy(probabilities, labels);
  reference = tf.tidy(() => tf.argMax(probabilities, 1).dataSync() as Int32Array);
  probabilities.dispose();
});

afterAll(() => {
  inputs.dispose();
  model.dispose();
});

describe('weight quantization on the trained MNIST CNN (1500 held-out digits)', () => {
  for (const [quantization, minimumAgreement] of [
    ['float16', 0.99],
    ['uint8', 0.95],
  ] as const satisfies readonly (readonly [WeightQuantization, number])[]) {
    it(`${quantization}: top-1 agrees with the float32 model on >= ${minimumAgreement * 100}% of digits`, async () => {
      const blobs = await stageToBlobs(model, { quantization });
      const quantized = await modelFromBlobs(
        blobs.topology,
        blobs.tensors.map((t) => t.bytes),
      );
      const probabilities = quantized.predict(inputs) as tf.Tensor;
      const predicted = tf.tidy(() => tf.argMax(probabilities, 1).dataSync() as Int32Array);
      let agree = 0;
      for (let i = 0; i < predicted.length; i++) if (predicted[i] === reference[i]) agree++;
      const agreement = agree / predicted.length;
      const quantizedAccuracy = accuracy(probabilities, labels);
      console.log(
        `${quantization}: weights ${blobs.weightBytes} of ${blobs.rawWeightBytes} bytes, top-1 agreement ${(agreement * 100).toFixed(2)}%, accuracy ${(quantizedAccuracy * 100).toFixed(2)}% (float32 ${(referenceAccuracy * 100).toFixed(2)}%)`,
      );
      expect(agreement).toBeGreaterThanOrEqual(minimumAgreement);
      probabilities.dispose();
      quantized.dispose();
    });
  }
});
