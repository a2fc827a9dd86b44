/**
 * End to end: a master in this process and real worker processes on loopback answer
 * `POST /api/infer` and `POST /v2/models/:name/infer` exactly as the whole model's local
 * `predict` does (MNIST CNN on both transports, ResNet50 over TCP, MobileNetV2 over Socket.IO).
 */

import { accuracy, type ExampleModelName, loadExampleModel, mnistTestSet } from '@dinfer/core/models';
import { initBackend } from '@dinfer/core/node';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import type { TransportKind } from '../src/cluster/transport-factory.js';
import {
  cleanUpAfterEachTest,
  getJson,
  type InProcessMaster,
  maxRelativeError,
  nest,
  postJson,
  type SimpleAnswer,
  spawnWorkers,
  startMasterInProcess,
  TRANSPORTS,
  topIndices,
  v2Infer,
  withTimeout,
} from './e2e-helpers.js';

/** Relative tolerance between the cluster's answers and the whole model's predict. */
const RTOL = 1e-3;

let master: InProcessMaster | undefined;

beforeAll(async () => {
  await initBackend();
});

cleanUpAfterEachTest(() => {
  const current = master;
  master = undefined;
  return current;
});

/** Starts a master for `modelJsonPath` and `workers` worker processes; resolves once ready. */
async function cluster(modelJsonPath: string, transport: TransportKind, stages: number, workers: number) {
  master = await startMasterInProcess({ model: modelJsonPath, transport, stages });
  const children = await spawnWorkers(master, transport, workers);
  await withTimeout(
    master.ready,
    60_000,
    `the cluster to be ready; worker output:\n${children.map((c) => c.output()).join('\n')}`,
  );
  const status = master.coordinator.status();
  expect(status.workers).toHaveLength(workers);
  expect(status.stages).toHaveLength(stages);
  for (const stage of status.stages) expect(stage.replicas.length).toBeGreaterThan(0);
  expect((await getJson(`${master.httpUrl}/v2/health/ready`)).status).toBe(200);
  const spec = master.coordinator.models()[0]!.inputs[0]!;
  return { master, inputName: spec.name, workerIds: new Set(status.workers.map((w) => w.id)) };
}

/** Deterministic inputs in [0, 1) (a small LCG, independent of TF.js' RNG). */
function pseudoImage(shape: readonly number[], seed: number): Float32Array {
  const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
  let state = seed >>> 0;
  for (let i = 0; i < data.length; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    data[i] = state / 2 ** 32;
  }
  return data;
}

function predictLocal(model: tf.LayersModel, data: Float32Array, shape: number[]): Float32Array {
  return tf.tidy(() => (model.predict(tf.tensor(data, shape)) as tf.Tensor).dataSync() as Float32Array);
}

describe.each(TRANSPORTS)('MNIST CNN through a 2-worker cluster over %s', (transport) => {
  it('answers 200 test digits with the local accuracy and outputs', async () => {
    const { model, modelJsonPath } = await loadExampleModel('mnist-cnn');
    const test = mnistTestSet(200);
    const localProbs = model.predict(test.inputs) as tf.Tensor;
    const localAccuracy = accuracy(localProbs, test.labels);
    const expected = localProbs.dataSync() as Float32Array;
    const pixels = test.inputs.dataSync() as Float32Array;
    localProbs.dispose();
    test.inputs.dispose();
    model.dispose();

    const { master, inputName, workerIds } = await cluster(modelJsonPath, transport, 2, 2);
    // Four batched v2 requests of 50 digits each, in flight together.
    const per = 28 * 28;
    const answers = await Promise.all(
      [0, 50, 100, 150].map((start) =>
        v2Infer(master.httpUrl, master.modelName, {
          name: inputName,
          shape: [50, 28, 28, 1],
          data: pixels.subarray(start * per, (start + 50) * per),
        }),
      ),
    );
    const got = new Float32Array(200 * 10);
    answers.forEach((answer, i) => {
      expect(answer.status).toBe(200);
      expect(answer.body.parameters.degraded).toBe(false);
      const output = answer.body.outputs[0]!;
      expect(output.shape).toEqual([50, 10]);
      got.set(output.data, i * 500);
    });
    expect(maxRelativeError(got, expected, 1e-6)).toBeLessThan(RTOL);
    const clusterProbs = tf.tensor2d(got, [200, 10]);
    const clusterAccuracy = accuracy(clusterProbs, test.labels);
    clusterProbs.dispose();
    expect(clusterAccuracy).toBe(localAccuracy);
    expect(localAccuracy).toBeGreaterThan(0.9); // the shipped model is trained

    // The simple API: two digits, top-5 indices and scores.
    const simple = await postJson<SimpleAnswer>(`${master.httpUrl}/api/infer`, {
      input: nest(pixels.subarray(0, 2 * per), [2, 28, 28, 1]),
    });
    expect(simple.status).toBe(200);
    expect(simple.body.degraded).toBe(false);
    expect(simple.body.nodes.map((n) => n.stage)).toEqual([0, 1]);
    for (const node of simple.body.nodes) expect(workerIds.has(node.worker)).toBe(true);
    simple.body.predictions.forEach((prediction, n) => {
      expect(prediction.top.map((t) => t.index)).toEqual(topIndices(expected, n * 10, 10, 5));
      const scores = prediction.top.map((t) => t.score);
      const want = prediction.top.map((t) => expected[n * 10 + t.index]!);
      expect(maxRelativeError(scores, want, 1e-6)).toBeLessThan(RTOL);
    });
  });
});

const imagenetCases: readonly [ExampleModelName, TransportKind, number, number][] = [
  ['resnet50', 'tcp', 2, 2],
  ['mobilenetv2', 'socketio', 3, 3],
];

describe.each(imagenetCases)('%s over %s (%i stages, %i workers)', (name, transport, stages, workers) => {
  it('answers like the whole model at 224x224', async () => {
    const { model, modelJsonPath } = await loadExampleModel(name);
    const shape = [1, 224, 224, 3];
    const image = pseudoImage(shape, 7);
    const expected = predictLocal(model, image, shape);
    model.dispose();

    const { master, inputName, workerIds } = await cluster(modelJsonPath, transport, stages, workers);
    const [v2, simple] = await Promise.all([
      v2Infer(master.httpUrl, master.modelName, { name: inputName, shape, data: image }),
      postJson<SimpleAnswer>(`${master.httpUrl}/api/infer`, { input: nest(image, shape.slice(1)) }),
    ]);
    expect(v2.status).toBe(200);
    expect(v2.body.parameters.degraded).toBe(false);
    expect(v2.body.outputs[0]!.shape).toEqual([1, 1000]);
    expect(maxRelativeError(v2.body.outputs[0]!.data, expected, 1e-6)).toBeLessThan(RTOL);

    expect(simple.status).toBe(200);
    expect(simple.body.degraded).toBe(false);
    expect(simple.body.nodes.map((n) => n.stage)).toEqual(Array.from({ length: stages }, (_, i) => i));
    for (const node of simple.body.nodes) expect(workerIds.has(node.worker)).toBe(true);
    const top = simple.body.predictions[0]!.top;
    expect(top.map((t) => t.index)).toEqual(topIndices(expected, 0, 1000, 5));
    const want = top.map((t) => expected[t.index]!);
    expect(
      maxRelativeError(
        top.map((t) => t.score),
        want,
        1e-6,
      ),
    ).toBeLessThan(RTOL);
  });
});
