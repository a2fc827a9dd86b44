/**
 * Per-worker metric series (heartbeat gauges, the breaker gauge) leave `/metrics` with their
 * worker, so a cluster whose workers come and go does not grow its exposition forever.
 */

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { saveLayersModel } from '@dinfer/core';
import { initBackend } from '@dinfer/core/node';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type MasterHandle, startMaster } from '../src/cluster/master.js';
import { startWorkerProcess, type WorkerProcessHandle } from '../src/cluster/worker-process.js';
import { randomToken, waitFor } from './e2e-helpers.js';

const PER_WORKER = [
  'dinfer_worker_cpu_ratio',
  'dinfer_worker_free_memory_bytes',
  'dinfer_worker_queue_length',
  'dinfer_worker_breaker_open',
];

let dir = '';
let modelJson = '';

beforeAll(async () => {
  await initBackend({ backend: 'cpu' });
  dir = await mkdtemp(path.join(tmpdir(), 'dinfer-worker-series-'));
  const input = tf.input({ shape: [4], name: 'x' });
  const out = tf.layers.dense({ units: 3, name: 'out' }).apply(input) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: out, name: 'tiny' });
  modelJson = (await saveLayersModel(model, path.join(dir, 'tiny'))).modelJsonPath;
  model.dispose();
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** The exposition lines of the per-worker series of `worker`. */
async function seriesOf(master: MasterHandle, worker: string): Promise<string[]> {
  const text = await master.metrics.exposition();
  return text
    .split('\n')
    .filter(
      (line) => PER_WORKER.some((name) => line.startsWith(`${name}{`)) && line.includes(`worker="${worker}"`),
    );
}

describe('per-worker metric series', () => {
  it('are removed when their worker leaves', async () => {
    const token = randomToken();
    const master = await startMaster({
      model: modelJson,
      token,
      stages: 1,
      profile: false,
      cacheMaxBytes: 0,
      httpHost: '127.0.0.1',
      httpPort: 0,
      clusterHost: '127.0.0.1',
      clusterPort: 0,
      heartbeatIntervalMs: 50,
      backend: 'cpu',
    });
    let worker: WorkerProcessHandle | undefined;
    try {
      worker = await startWorkerProcess({ master: master.clusterAddress, token, backend: 'cpu' });
      await master.ready;
      const id = worker.worker.workerId ?? '';
      expect(id).not.toBe('');
      const answer = await master.service.infer('tiny', [
        { name: 'x', dtype: 'float32', shape: [1, 4], data: new Float32Array([1, 2, 3, 4]) },
      ]);
      expect(answer.outputs[0]?.shape).toEqual([1, 3]);
      // A heartbeat and a stage call have put every per-worker series of this worker in /metrics.
      const before = await waitFor('every per-worker series', async () => {
        const lines = await seriesOf(master, id);
        return lines.length === PER_WORKER.length && lines;
      });
      expect(before).toHaveLength(PER_WORKER.length);
      await worker.worker.stop();
      worker = undefined;
      await waitFor('the worker to leave', () => master.coordinator.status().workers.length === 0);
      expect(await seriesOf(master, id)).toEqual([]);
    } finally {
      await worker?.worker.stop();
      await master.stop();
    }
  });
});
