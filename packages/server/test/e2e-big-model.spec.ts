/**
 * End to end: `startMaster({ model, stages: 'auto' })` serves a model from its artifacts to
 * real worker processes whose `--max-memory` budgets are each too small for the whole model:
 * the plan spreads it over them, the answers equal the whole model's predict, and a model the
 * workers cannot hold stops the master with PLAN_INFEASIBLE.
 */

import {
  analyzeModel,
  DinferErrorCode,
  isDinferError,
  saveLayersModel,
  stageMemoryModel,
} from '@dinfer/core';
import { initBackend } from '@dinfer/core/node';
import * as tf from '@tensorflow/tfjs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  type InProcessMaster,
  killAllChildren,
  maxRelativeError,
  removeTempDirs,
  spawnWorker,
  startMasterInProcess,
  stopMaster,
  tempDir,
  v2Infer,
  withTimeout,
} from './e2e-helpers.js';

let master: InProcessMaster | undefined;
let model: tf.LayersModel;
let modelJson: string;
/** What `layers` consecutive layers need of a worker, from the first one. */
let need: (layers: number) => number;

beforeAll(async () => {
  await initBackend();
  // Six 512-wide Dense layers: 1 MiB of weights each.
  model = tf.sequential({
    name: 'tower',
    layers: Array.from({ length: 6 }, (_, i) =>
      tf.layers.dense({
        units: 512,
        activation: 'tanh',
        name: `d${i}`,
        ...(i === 0 ? { inputShape: [512] } : {}),
      }),
    ),
  });
  const dir = await tempDir('dinfer-e2e-big-');
  modelJson = (await saveLayersModel(model, dir)).modelJsonPath;
  const memory = stageMemoryModel(analyzeModel(model));
  need = (layers) => memory(0, layers).totalBytes;
});

afterEach(async () => {
  await stopMaster(master);
  master = undefined;
  await killAllChildren();
});

afterAll(async () => {
  await killAllChildren();
  await removeTempDirs();
});

async function cluster(workers: number, budget: number) {
  master = await startMasterInProcess({
    model: modelJson,
    transport: 'tcp',
    stages: 'auto',
    minWorkers: workers,
    scheduler: 'capability',
    // The master cannot run any stage itself.
    memoryBytes: need(1) - 1,
  });
  const children = await Promise.all(
    Array.from({ length: workers }, (_, i) =>
      spawnWorker({
        master: master!.clusterAddress,
        token: master!.token,
        transport: 'tcp',
        name: `big-${i + 1}`,
        extraArgs: ['--max-memory', String(budget), '--backend', 'wasm'],
      }),
    ),
  );
  return { master, children };
}

describe('a model bigger than any worker, served from its artifacts', () => {
  it('is planned over the workers to fit their --max-memory, and answers as the whole model does', async () => {
    expect(need(6)).toBeGreaterThan(need(2));
    const { master, children } = await cluster(3, need(2));
    await withTimeout(master.ready, 90_000, `ready; workers:\n${children.map((c) => c.output()).join('\n')}`);
    const status = master.coordinator.status();
    expect(status.stages).toHaveLength(3);
    for (const stage of status.stages) expect(stage.replicas).toHaveLength(1);
    expect(master.cuts).toHaveLength(2);
    const data = Float32Array.from({ length: 512 }, (_, i) => Math.sin(i));
    const answer = await v2Infer(master.httpUrl, 'tower', { name: 'd0_input', shape: [1, 512], data });
    expect(answer.status).toBe(200);
    const want = tf.tidy(
      () => (model.predict(tf.tensor(data, [1, 512])) as tf.Tensor).dataSync() as Float32Array,
    );
    expect(maxRelativeError(answer.body.outputs[0]!.data, want)).toBeLessThanOrEqual(1e-4);
  });

  it('stops with PLAN_INFEASIBLE, saying how much memory is missing, when the workers cannot hold it', async () => {
    const { master } = await cluster(2, need(2));
    const error = await withTimeout(
      master.ready.then(
        () => undefined,
        (e: unknown) => e,
      ),
      90_000,
      'the plan to fail',
    );
    expect(isDinferError(error, DinferErrorCode.PLAN_INFEASIBLE)).toBe(true);
    expect((error as Error).message).toMatch(/bytes are missing per worker; it needs at least 3 workers/);
  });
});
