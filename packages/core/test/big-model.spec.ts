/**
 * A model served from its artifacts by workers whose memory budgets are each smaller than the
 * model, with a master whose own budget holds no stage: the plan must spread the model, the
 * answers must equal the whole model's predict, and a stage no worker serves fails explicitly.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DinferErrorCode, isDinferError } from '../src/errors.js';
import { type Coordinator, createCoordinator } from '../src/master/coordinator.js';
import type { CoordinatorEvent } from '../src/master/coordinator-types.js';
import type { Deployment } from '../src/master/deployment.js';
import { analyzeModel } from '../src/model/analyze.js';
import { initBackend } from '../src/node/backend.js';
import { createBlobStore } from '../src/node/disk-blob-store.js';
import { capabilityBasedScheduler } from '../src/place/capability-based.js';
import { stageMemoryModel } from '../src/plan/stage-memory.js';
import { fromTfTensor } from '../src/tensor/tfjs.js';
import type { TensorData } from '../src/tensor/types.js';
import { MemoryNetwork, memoryTransport } from '../src/testing/memory-transport.js';
import { createWorker, type DinferWorker } from '../src/worker/worker.js';
import { randomizeWeights, sampleInputs } from './fixtures/models.js';
import { writeQuantizedArtifacts } from './fixtures/quantized-artifacts.js';

const TOKEN = 'big-model-test-token';
const MEMORY = { batchSize: 2, overheadBytes: 16 * 1024 };
const dirs: string[] = [];
const running: { coordinator: Coordinator; workers: DinferWorker[] }[] = [];

const tempDir = (prefix: string) => {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(dir);
  return dir;
};

/** Six residual blocks of two 256-wide Dense layers: about 3.3 MiB of weights. */
function residualTower(seed: number): tf.LayersModel {
  const x = tf.input({ shape: [32], name: 'x' });
  let h = tf.layers.dense({ units: 256, activation: 'relu', name: 'stem' }).apply(x) as tf.SymbolicTensor;
  for (let b = 0; b < 6; b++) {
    const a = tf.layers
      .dense({ units: 256, activation: 'relu', name: `b${b}_a` })
      .apply(h) as tf.SymbolicTensor;
    const c = tf.layers.dense({ units: 256, name: `b${b}_c` }).apply(a) as tf.SymbolicTensor;
    h = tf.layers.add({ name: `b${b}_add` }).apply([h, c]) as tf.SymbolicTensor;
  }
  const y = tf.layers.dense({ units: 10, activation: 'softmax', name: 'head' }).apply(h) as tf.SymbolicTensor;
  const model = tf.model({ inputs: x, outputs: y, name: 'tower' });
  randomizeWeights(model, seed);
  // Keep the residual sums bounded through the six blocks.
  for (const layer of model.layers.filter((l) => l.name.endsWith('_c'))) {
    layer.setWeights(layer.getWeights().map((w) => w.mul(0.2)));
  }
  return model;
}

async function artifactsOf(model: tf.LayersModel): Promise<string> {
  const dir = tempDir('dinfer-big-artifacts-');
  await writeQuantizedArtifacts(model, dir, () => undefined, { shardBytes: 100_000 });
  return join(dir, 'model.json');
}

/** What the whole model needs of one process, and a worker budget of a share of it. */
function budgets(model: tf.LayersModel, share: number): { whole: number; worker: number } {
  const analysis = analyzeModel(model);
  const whole = stageMemoryModel(analysis, MEMORY)(0, analysis.layers.length).totalBytes;
  return { whole, worker: Math.ceil(whole * share) };
}

async function startCluster(options: {
  artifacts: string;
  workers: number;
  workerMemoryBytes: number;
  masterMemoryBytes: number;
}): Promise<{
  coordinator: Coordinator;
  deployment: Deployment;
  workers: DinferWorker[];
  events: CoordinatorEvent[];
  logs: { context: Record<string, unknown>; message: string }[];
}> {
  const network = new MemoryNetwork();
  const events: CoordinatorEvent[] = [];
  const logs: { context: Record<string, unknown>; message: string }[] = [];
  const record = (context: Record<string, unknown>, message: string) => logs.push({ context, message });
  const coordinator = createCoordinator({
    transport: memoryTransport({ network }),
    token: TOKEN,
    listen: 'memory:0',
    heartbeat: { enabled: false },
    pingIntervalMs: 0,
    scheduler: capabilityBasedScheduler(),
    memoryBytes: options.masterMemoryBytes,
    retry: { maxAttempts: 2, initialDelayMs: 5, maxDelayMs: 10 },
    logger: { debug() {}, info: record, warn: record, error: record },
    onEvent: (e) => events.push(e),
  });
  const { address } = await coordinator.start();
  const deployment = await coordinator.deploy({
    name: 'tower',
    version: '1',
    artifacts: options.artifacts,
    plan: { stages: 'auto', memory: MEMORY },
  });
  const workers: DinferWorker[] = [];
  running.push({ coordinator, workers });
  for (let i = 0; i < options.workers; i++) {
    const worker = createWorker({
      transport: memoryTransport({ network }),
      token: TOKEN,
      master: address,
      name: `worker-${i}`,
      store: createBlobStore({ dir: tempDir('dinfer-big-cache-') }),
      capabilities: { backend: tf.getBackend(), cores: 1, memoryBytes: options.workerMemoryBytes, score: 1 },
      reconnect: false,
    });
    await worker.start();
    workers.push(worker);
  }
  return { coordinator, deployment, workers, events, logs };
}

/**
 * A tower (weights seeded by `seed`) served by `workers` workers of `share` of its memory need
 * each, and a master of `masterShare` of it; resolves once ready.
 */
async function servedTower(seed: number, share: number, workers: number, masterShare = 0.05) {
  const model = residualTower(seed);
  const { whole, worker } = budgets(model, share);
  const cluster = await startCluster({
    artifacts: await artifactsOf(model),
    workers,
    workerMemoryBytes: worker,
    masterMemoryBytes: Math.floor(whole * masterShare),
  });
  await cluster.coordinator.waitUntilReady({ minWorkers: workers, timeoutMs: 60_000 });
  return { model, worker, cluster };
}

async function predictData(model: tf.LayersModel, input: tf.Tensor): Promise<TensorData> {
  const out = model.predict(input) as tf.Tensor;
  const data = await fromTfTensor(out);
  out.dispose();
  return data;
}

function expectClose(actual: TensorData, wanted: TensorData): void {
  expect(actual.shape).toEqual(wanted.shape);
  for (let k = 0; k < wanted.data.length; k++) {
    expect(Math.abs(Number(actual.data[k]) - Number(wanted.data[k]))).toBeLessThanOrEqual(1e-5);
  }
}

beforeAll(async () => {
  await initBackend();
});

afterEach(async () => {
  for (const c of running.splice(0)) {
    await Promise.allSettled(c.workers.map((w) => w.stop({ drain: false })));
    await c.coordinator.stop();
  }
});

afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

describe('a model no single process can hold, served from its artifacts', () => {
  it('is planned across the workers to fit their budgets and answers as the whole model does', async () => {
    const { model, cluster } = await servedTower(3, 0.4, 6);
    const planned = cluster.events.find((e) => e.type === 'version.planned');
    expect(planned).toBeDefined();
    const status = cluster.coordinator.status();
    expect(status.stages.length).toBeGreaterThanOrEqual(3);
    const versions = cluster.coordinator.versions('tower');
    expect(versions[0]!.stages).toBe(status.stages.length);
    for (const input of [sampleInputs(model, 1, 11)[0]!, sampleInputs(model, 2, 12)[0]!]) {
      const result = await cluster.coordinator.infer('tower', [await fromTfTensor(input)]);
      expectClose(result.outputs[0]!, await predictData(model, input));
      expect(result.degraded).toBe(false);
      expect(result.nodes.map((n) => n.stage)).toEqual(status.stages.map((s) => s.index));
      input.dispose();
    }
  });

  it('rolls a new version out beside the serving one, in the memory the workers have left, checked without the master', async () => {
    const { model, worker, cluster } = await servedTower(3, 0.75, 6);
    const v2 = residualTower(4);
    const deployed = await cluster.coordinator.deploy({
      name: 'tower',
      version: '2',
      artifacts: await artifactsOf(v2),
      plan: { stages: 'auto', memory: MEMORY },
    });
    const checks = cluster.logs.filter((l) => l.message === 'warm-up check passed');
    expect(checks.map((l) => [l.context.version, l.context.check])).toEqual([['2', 'worker-replicas']]);
    // No worker was given more than its budget, counting both versions' stages.
    const need = new Map<string, number>();
    for (const stage of [...cluster.deployment.stages, ...deployed.stages])
      need.set(stage.key, stage.requirement.memoryBytes);
    for (const w of cluster.coordinator.status().workers) {
      const held = w.stages.reduce((sum, key) => sum + (need.get(key) ?? 0), 0);
      expect(held).toBeLessThanOrEqual(worker);
    }
    const [x] = sampleInputs(model, 1, 13);
    const answer = await cluster.coordinator.infer('tower', [await fromTfTensor(x!)]);
    expect(answer.version).toBe('2');
    expectClose(answer.outputs[0]!, await predictData(v2, x!));
    // A version whose weights hold NaN is refused by that check, and version 2 keeps serving.
    const broken = residualTower(5);
    const head = broken.getLayer('head');
    head.setWeights(head.getWeights().map((w) => tf.fill(w.shape, Number.NaN)));
    const refused = await cluster.coordinator
      .deploy({
        name: 'tower',
        version: '3',
        artifacts: await artifactsOf(broken),
        plan: { stages: 'auto', memory: MEMORY },
      })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(isDinferError(refused, DinferErrorCode.ROLLOUT_FAILED)).toBe(true);
    expect((refused as Error).message).toMatch(/NaN or Infinity/);
    const still = await cluster.coordinator.infer('tower', [await fromTfTensor(x!)]);
    expect(still.version).toBe('2');
    x!.dispose();
  });

  it('refuses a new version with no room left beside the serving one, which keeps serving', async () => {
    const { model, cluster } = await servedTower(3, 0.4, 6);
    const refused = await cluster.coordinator
      .deploy({
        name: 'tower',
        version: '2',
        artifacts: await artifactsOf(residualTower(4)),
        plan: { stages: 'auto', memory: MEMORY },
      })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(isDinferError(refused, DinferErrorCode.ROLLOUT_FAILED)).toBe(true);
    expect((refused as Error).message).toMatch(/does not fit the cluster/);
    const [x] = sampleInputs(model, 1, 17);
    const answer = await cluster.coordinator.infer('tower', [await fromTfTensor(x!)]);
    expect(answer.version).toBe('1');
    expectClose(answer.outputs[0]!, await predictData(model, x!));
    x!.dispose();
  });

  it('fails the requests of a stage no worker serves with NO_WORKER naming it, when it does not fit the master', async () => {
    const { model, cluster } = await servedTower(5, 0.5, 3);
    const holder = cluster.coordinator.status().stages[1]!.replicas;
    expect(holder).toHaveLength(1);
    const index = cluster.coordinator.status().workers.findIndex((w) => w.id === holder[0]);
    await cluster.workers[index]!.stop({ drain: false });
    const [x] = sampleInputs(model, 1, 14);
    const error = await cluster.coordinator.infer('tower', [await fromTfTensor(x!)]).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isDinferError(error, DinferErrorCode.NO_WORKER)).toBe(true);
    expect((error as Error).message).toMatch(/stage 1 of tower@1/);
    expect((error as Error).message).toMatch(/memory budget/);
    x!.dispose();
  });

  it("runs such a stage on the master where it fits the master's budget (degraded mode)", async () => {
    const { model, cluster } = await servedTower(6, 0.5, 3, 1);
    const holder = cluster.coordinator.status().stages[0]!.replicas[0]!;
    const index = cluster.coordinator.status().workers.findIndex((w) => w.id === holder);
    await cluster.workers[index]!.stop({ drain: false });
    const [x] = sampleInputs(model, 1, 15);
    const result = await cluster.coordinator.infer('tower', [await fromTfTensor(x!)]);
    expectClose(result.outputs[0]!, await predictData(model, x!));
    expect(result.nodes[0]!.worker).toBe('master');
    x!.dispose();
  });

  it('refuses a model the workers cannot hold with PLAN_INFEASIBLE saying how much memory is missing', async () => {
    const model = residualTower(7);
    const { worker } = budgets(model, 0.3);
    const cluster = await startCluster({
      artifacts: await artifactsOf(model),
      workers: 2,
      workerMemoryBytes: worker,
      masterMemoryBytes: worker,
    });
    const error = await cluster.coordinator.waitUntilReady({ minWorkers: 2, timeoutMs: 60_000 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isDinferError(error, DinferErrorCode.PLAN_INFEASIBLE)).toBe(true);
    expect((error as Error).message).toMatch(/bytes are missing per worker; it needs at least \d+ workers/);
    const [x] = sampleInputs(model, 1, 16);
    await expect(cluster.coordinator.infer('tower', [await fromTfTensor(x!)])).rejects.toSatisfy(
      (e: unknown) => isDinferError(e, DinferErrorCode.NOT_READY),
    );
    x!.dispose();
  });
});
