/**
 * A 2-worker cluster through `startMaster`, with the custom transport (WebSocket) and scheduler
 * from dinfer's examples, checked against the whole model's `predict`: what a user of the packed
 * packages writes, compiled with strict TypeScript outside the dinfer repository.
 */

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { saveLayersModel } from '@dinfer/core';
import { initBackend } from '@dinfer/core/node';
import { startMaster, startWorkerProcess } from '@dinfer/server';
import * as tf from '@tensorflow/tfjs';
import { spreadScheduler } from './custom/spread-scheduler.js';
import { webSocketTransport } from './custom/websocket-transport.js';

await initBackend();
const dir = await mkdtemp(join(tmpdir(), 'dinfer-smoke-'));
const model = tf.sequential({
  layers: [
    tf.layers.dense({ inputShape: [8], units: 32, activation: 'relu', name: 'hidden' }),
    tf.layers.dense({ units: 16, activation: 'relu', name: 'hidden2' }),
    tf.layers.dense({ units: 4, activation: 'softmax', name: 'probs' }),
  ],
  name: 'smoke',
});
await saveLayersModel(model, join(dir, 'model'));
const token = 'smoke-token-0123456789abcdef';
const master = await startMaster({
  model: join(dir, 'model', 'model.json'),
  stages: 2,
  profile: false,
  transport: webSocketTransport(),
  scheduler: spreadScheduler(),
  token,
  httpHost: '127.0.0.1',
  httpPort: 0,
  clusterHost: '127.0.0.1',
  clusterPort: 0,
});
const workers = await Promise.all(
  ['smoke-a', 'smoke-b'].map((name) =>
    startWorkerProcess({
      master: master.clusterAddress,
      transport: webSocketTransport(),
      token,
      name,
      cacheDir: join(dir, name),
    }),
  ),
);
await master.ready;

const metadata = (await (await fetch(`${master.httpUrl}/v2/models/smoke`)).json()) as {
  inputs: { name: string }[];
};
const inputName = metadata.inputs[0]!.name;
const input = tf.randomNormal([3, 8], 0, 1, 'float32', 11);
const expected = (model.predict(input) as tf.Tensor).dataSync();
const response = await fetch(`${master.httpUrl}/v2/models/smoke/infer`, {
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify({
    inputs: [{ name: inputName, shape: [3, 8], datatype: 'FP32', data: Array.from(input.dataSync()) }],
  }),
});
const body = (await response.json()) as { outputs?: { data: number[] }[]; error?: string };
if (response.status !== 200 || body.outputs === undefined) {
  throw new Error(`inference failed: HTTP ${response.status} ${JSON.stringify(body)}`);
}
const got = body.outputs[0]!.data;
const worst = got.reduce((max, v, i) => Math.max(max, Math.abs(v - expected[i]!)), 0);
if (got.length !== expected.length || worst > 1e-5) {
  throw new Error(`the cluster's answer differs from predict by ${worst}`);
}
const stages = master.coordinator.status().stages.map((s) => s.replicas.length);
if (master.coordinator.status().workers.some((w) => !w.address.length))
  throw new Error('a worker has no address');
if (stages.length !== 2 || stages.some((n) => n < 1))
  throw new Error(`expected 2 served stages, got ${stages}`);
console.log(
  `cluster over websocket: 2 stages on ${workers.length} workers, answer equals predict (max error ${worst.toExponential(2)})`,
);

for (const worker of workers) await worker.worker.stop();
await master.stop();
await rm(dir, { recursive: true, force: true });
