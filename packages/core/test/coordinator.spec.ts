import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DinferErrorCode } from '../src/errors.js';
import { type Coordinator, createCoordinator } from '../src/master/coordinator.js';
import type { CoordinatorEvent } from '../src/master/coordinator-types.js';
import { analyzeModel } from '../src/model/analyze.js';
import { initBackend } from '../src/node/backend.js';
import { createBlobStore } from '../src/node/disk-blob-store.js';
import { roundRobinScheduler } from '../src/place/round-robin.js';
import { type Scheduler, schedulerSymbol, type WorkerView } from '../src/scheduler.js';
import { fromTfTensor, toTfTensor } from '../src/tensor/tfjs.js';
import type { TensorData } from '../src/tensor/types.js';
import { MemoryNetwork, memoryTransport } from '../src/testing/memory-transport.js';
import { createWorker, type DinferWorker } from '../src/worker/worker.js';
import { fixture, sampleInputs } from './fixtures/models.js';

const TOKEN = 'coordinator-test-token';
const caps = { backend: 'wasm', cores: 1, memoryBytes: 1024 ** 3, score: 1 };

interface Cluster {
  coordinator: Coordinator;
  workers: DinferWorker[];
  address: string;
  network: MemoryNetwork;
  events: CoordinatorEvent[];
  addWorker(name: string): Promise<DinferWorker>;
}

const cacheDirs: string[] = [];
const clusters: Cluster[] = [];

async function startCluster(
  model: tf.LayersModel,
  cuts: number[],
  workerCount: number,
  options: { startDegraded?: boolean; waitReady?: boolean; scheduler?: Scheduler } = {},
): Promise<Cluster> {
  const network = new MemoryNetwork();
  const events: CoordinatorEvent[] = [];
  const coordinator = createCoordinator({
    transport: memoryTransport({ network }),
    token: TOKEN,
    listen: 'memory:0',
    heartbeat: { enabled: false },
    pingIntervalMs: 0,
    startDegraded: options.startDegraded,
    scheduler: options.scheduler,
    retry: { initialDelayMs: 5, maxDelayMs: 20 },
    onEvent: (e) => events.push(e),
  });
  const { address } = await coordinator.start();
  await coordinator.deploy({ name: 'm', version: '1', model, cuts });
  const cluster: Cluster = {
    coordinator,
    workers: [],
    address,
    network,
    events,
    async addWorker(name) {
      const cacheDir = mkdtempSync(join(tmpdir(), 'dinfer-coord-'));
      cacheDirs.push(cacheDir);
      const worker = createWorker({
        transport: memoryTransport({ network }),
        token: TOKEN,
        master: address,
        name,
        store: createBlobStore({ dir: cacheDir }),
        capabilities: caps,
        reconnect: false,
      });
      await worker.start();
      cluster.workers.push(worker);
      return worker;
    },
  };
  clusters.push(cluster);
  for (let i = 0; i < workerCount; i++) await cluster.addWorker(`worker-${i}`);
  if (options.waitReady !== false) await coordinator.waitUntilReady({ timeoutMs: 60_000 });
  return cluster;
}

async function expected(model: tf.LayersModel, inputs: tf.Tensor[]): Promise<TensorData[]> {
  const out = model.predict(inputs.length === 1 ? inputs[0]! : inputs);
  const list = Array.isArray(out) ? out : [out];
  const data = await Promise.all(list.map((t) => fromTfTensor(t)));
  tf.dispose(list);
  return data;
}

function expectOutputsClose(actual: readonly TensorData[], wanted: readonly TensorData[]): void {
  expect(actual.length).toBe(wanted.length);
  actual.forEach((a, i) => {
    const w = wanted[i]!;
    expect(a.shape).toEqual(w.shape);
    const scale = Math.max(1, ...Array.from(w.data as Float32Array, Math.abs));
    for (let k = 0; k < w.data.length; k++) {
      expect(Math.abs((a.data[k] as number) - (w.data[k] as number))).toBeLessThanOrEqual(1e-5 * scale);
    }
  });
}

function validCuts(model: tf.LayersModel): number[] {
  return analyzeModel(model)
    .cuts.filter((c) => c.valid)
    .map((c) => c.index);
}

beforeAll(async () => {
  await initBackend();
});

afterEach(async () => {
  for (const c of clusters.splice(0)) {
    await Promise.allSettled(c.workers.map((w) => w.stop({ drain: false })));
    await c.coordinator.stop();
  }
});

afterAll(() => {
  for (const dir of cacheDirs) rmSync(dir, { recursive: true, force: true });
});

describe('coordinator', () => {
  it('serves a 3-stage residual model across 3 workers with the whole model answer', async () => {
    const model = fixture('residual add block').build();
    const cuts = validCuts(model);
    const chosen = [cuts[Math.floor(cuts.length / 3)]!, cuts[Math.floor((2 * cuts.length) / 3)]!];
    const { coordinator, events } = await startCluster(model, chosen, 3);
    const inputs = sampleInputs(model, 2);
    const result = await coordinator.infer('m', await Promise.all(inputs.map((t) => fromTfTensor(t))));
    expectOutputsClose(result.outputs, await expected(model, inputs));
    expect(result.nodes.map((n) => n.stage)).toEqual([0, 1, 2]);
    expect(new Set(result.nodes.map((n) => n.worker)).size).toBe(3);
    expect(result.degraded).toBe(false);
    expect(result.version).toBe('1');
    expect(events.filter((e) => e.type === 'stage.loaded')).toHaveLength(3);
    expect(events.some((e) => e.type === 'ready')).toBe(true);
    const status = coordinator.status();
    expect(status.ready).toBe(true);
    expect(status.stages.map((s) => s.replicas.length)).toEqual([1, 1, 1]);
    tf.dispose(inputs);
  });

  it('answers 60 concurrent requests correctly for a multi-input multi-output model', async () => {
    const model = fixture('multi-input multi-output').build();
    const cuts = validCuts(model);
    const { coordinator } = await startCluster(model, [cuts[Math.floor(cuts.length / 2)]!], 3);
    const batches = Array.from({ length: 60 }, (_, i) => sampleInputs(model, 1 + (i % 3), 100 + i));
    const results = await Promise.all(
      batches.map(async (inputs) =>
        coordinator.infer('m', await Promise.all(inputs.map((t) => fromTfTensor(t)))),
      ),
    );
    for (const [i, result] of results.entries())
      expectOutputsClose(result.outputs, await expected(model, batches[i]!));
    tf.dispose(batches.flat());
  });

  it('loses no request when a replica is killed mid-stream', async () => {
    const model = fixture('small CNN').build();
    const cuts = validCuts(model);
    const cluster = await startCluster(model, [cuts[Math.floor(cuts.length / 2)]!], 4);
    const inputs = sampleInputs(model, 1, 3);
    const data = await Promise.all(inputs.map((t) => fromTfTensor(t)));
    const want = await expected(model, inputs);
    // Ready means every stage has a replica; the spare workers finish loading just after.
    await waitFor(() => cluster.coordinator.status().stages.every((s) => s.replicas.length === 2));
    const pending = Array.from({ length: 120 }, () => cluster.coordinator.infer('m', data));
    await new Promise((r) => setTimeout(r, 5));
    await cluster.workers[1]!.stop({ drain: false }); // abrupt: connection closes with work in flight
    const results = await Promise.all(pending);
    for (const r of results) expectOutputsClose(r.outputs, want);
    expect(results.every((r) => !r.nodes.some((n) => n.worker === 'master'))).toBe(true);
    tf.dispose(inputs);
  });

  it('runs a stage on the master when its only worker is lost, and uses a rejoining worker again', async () => {
    const model = fixture('sequential MLP').build();
    const cuts = validCuts(model);
    const cluster = await startCluster(model, [cuts[0]!], 2);
    const inputs = sampleInputs(model, 2, 5);
    const data = await Promise.all(inputs.map((t) => fromTfTensor(t)));
    const want = await expected(model, inputs);
    const holder = cluster.coordinator.status().stages[1]!.replicas[0]!;
    const index = cluster.coordinator.status().workers.findIndex((w) => w.id === holder);
    await cluster.workers[index]!.stop({ drain: false });
    // Re-placement moves the stage to the survivor; until then, or if it cannot, the master serves it.
    const during = await cluster.coordinator.infer('m', data);
    expectOutputsClose(during.outputs, want);
    expect(cluster.coordinator.health().ready).toBe(true);
    // A worker joining again is used again.
    await cluster.addWorker('rejoined');
    await waitFor(() => cluster.coordinator.status().stages.every((s) => s.replicas.length >= 1));
    const after = await cluster.coordinator.infer('m', data);
    expectOutputsClose(after.outputs, want);
    expect(after.degraded).toBe(false);
    tf.dispose(inputs);
  });

  it('runs every stage on the master when all workers are gone (degraded mode)', async () => {
    const model = fixture('small CNN').build();
    const cuts = validCuts(model);
    const cluster = await startCluster(model, [cuts[1]!], 2);
    const inputs = sampleInputs(model, 1, 9);
    const data = await Promise.all(inputs.map((t) => fromTfTensor(t)));
    for (const w of cluster.workers) await w.stop({ drain: false });
    await waitFor(() => cluster.coordinator.status().workers.length === 0);
    const result = await cluster.coordinator.infer('m', data);
    expectOutputsClose(result.outputs, await expected(model, inputs));
    expect(result.degraded).toBe(true);
    expect(result.nodes.every((n) => n.worker === 'master')).toBe(true);
    expect(cluster.coordinator.health()).toMatchObject({ ready: true, degraded: true });
    expect(cluster.events.some((e) => e.type === 'degraded' && e.active)).toBe(true);
    tf.dispose(inputs);
  });

  it('refuses requests until ready, unknown models and wrong shapes with typed errors', async () => {
    const model = fixture('small CNN').build();
    const cuts = validCuts(model);
    const cluster = await startCluster(model, [cuts[1]!], 0, { waitReady: false });
    const inputs = sampleInputs(model, 1);
    const data = await Promise.all(inputs.map((t) => fromTfTensor(t)));
    await expect(cluster.coordinator.infer('m', data)).rejects.toMatchObject({
      code: DinferErrorCode.NOT_READY,
    });
    expect(cluster.coordinator.health().ready).toBe(false);
    const ready = cluster.coordinator.waitUntilReady({ minWorkers: 2, timeoutMs: 30_000 });
    await cluster.addWorker('a');
    await cluster.addWorker('b');
    await ready;
    await expect(cluster.coordinator.infer('nope', data)).rejects.toMatchObject({
      code: DinferErrorCode.UNKNOWN_MODEL,
      message: expect.stringContaining('"m"'),
    });
    const bad: TensorData = { dtype: 'float32', shape: [1, 3], data: new Float32Array(3) };
    await expect(cluster.coordinator.infer('m', [bad])).rejects.toMatchObject({
      code: DinferErrorCode.TENSOR_INVALID,
      message: expect.stringMatching(/does not match the model input/),
    });
    tf.dispose(inputs);
  });

  it('starts degraded only when asked to', async () => {
    const model = fixture('sequential MLP').build();
    const cluster = await startCluster(model, [validCuts(model)[0]!], 0, {
      startDegraded: true,
      waitReady: false,
    });
    await cluster.coordinator.waitUntilReady({ minWorkers: 1, timeoutMs: 1000 });
    const inputs = sampleInputs(model, 1);
    const result = await cluster.coordinator.infer(
      'm',
      await Promise.all(inputs.map((t) => fromTfTensor(t))),
    );
    expect(result.degraded).toBe(true);
    expectOutputsClose(result.outputs, await expected(model, inputs));
    tf.dispose(inputs);
  });

  it('leaves no tensors behind on the master', async () => {
    const model = fixture('small CNN').build();
    const cluster = await startCluster(model, [validCuts(model)[1]!], 0, {
      startDegraded: true,
      waitReady: false,
    });
    const inputs = sampleInputs(model, 1);
    const data = await Promise.all(inputs.map((t) => fromTfTensor(t)));
    await cluster.coordinator.infer('m', data);
    const start = tf.memory().numTensors;
    for (let i = 0; i < 5; i++) await cluster.coordinator.infer('m', data);
    expect(tf.memory().numTensors).toBe(start);
    tf.dispose(inputs);
    expect(toTfTensor).toBeTypeOf('function');
  });
});

describe('coordinator with a custom scheduler', () => {
  /** A scheduler that delegates to round-robin but rewrites its answers. */
  function rewriting(
    name: string,
    rewrite: { place?: (stages: string[][]) => unknown; route?: (chosen: string) => unknown },
  ): Scheduler & { seen: WorkerView[]; routed: WorkerView[][] } {
    const inner = roundRobinScheduler();
    const seen: WorkerView[] = [];
    const routed: WorkerView[][] = [];
    return {
      [schedulerSymbol]: true,
      name,
      seen,
      routed,
      place(request) {
        seen.push(...request.workers);
        const placement = inner.place(request);
        return (rewrite.place ? rewrite.place(placement.stages.map((s) => [...s])) : placement) as never;
      },
      route(stage, replicas) {
        routed.push([...replicas]);
        const chosen = inner.route(stage, replicas);
        return (rewrite.route ? rewrite.route(chosen) : chosen) as never;
      },
    };
  }

  it('shows schedulers the worker names and serves with the replica whose id route returns', async () => {
    const model = fixture('residual add block').build();
    const scheduler = rewriting('by-id', {});
    const { coordinator } = await startCluster(model, [validCuts(model)[0]!], 2, { scheduler });
    expect(new Set(scheduler.seen.map((w) => w.name))).toEqual(new Set(['worker-0', 'worker-1']));
    const inputs = sampleInputs(model, 1);
    const result = await coordinator.infer('m', await Promise.all(inputs.map((t) => fromTfTensor(t))));
    expectOutputsClose(result.outputs, await expected(model, inputs));
    tf.dispose(inputs);
  });

  it("tells route() each replica's measured call time for the stage once it has answered one", async () => {
    const model = fixture('residual add block').build();
    const scheduler = rewriting('timed', {});
    const { coordinator } = await startCluster(model, [validCuts(model)[0]!], 2, { scheduler });
    const tensors = sampleInputs(model, 1);
    const inputs = await Promise.all(tensors.map((t) => fromTfTensor(t)));
    tf.dispose(tensors);
    await coordinator.infer('m', inputs);
    expect(
      scheduler.routed
        .slice(0, 2)
        .flat()
        .every((v) => v.callMs === undefined),
    ).toBe(true);
    await coordinator.infer('m', inputs);
    const later = scheduler.routed.slice(2).flat();
    expect(later.length).toBe(2);
    for (const view of later) expect(view.callMs).toBeGreaterThan(0);
  });

  it('fails readiness at once, naming the scheduler, when place() names unknown workers', async () => {
    const model = fixture('residual add block').build();
    const scheduler = rewriting('bogus-ids', {
      place: (stages) => ({ stages: stages.map(() => ['nobody']) }),
    });
    const cluster = await startCluster(model, [validCuts(model)[0]!], 2, { scheduler, waitReady: false });
    const started = Date.now();
    const error = await cluster.coordinator.waitUntilReady({ timeoutMs: 30_000 }).catch((e: unknown) => e);
    expect(Date.now() - started).toBeLessThan(20_000);
    expect(error).toMatchObject({ code: DinferErrorCode.SCHEDULER_INVALID });
    expect((error as Error).message).toContain('scheduler "bogus-ids"');
    expect((error as Error).message).toContain('unknown worker "nobody"');
    expect(cluster.events.some((e) => e.type === 'placement.failed')).toBe(true);
  });

  it('fails readiness when place() returns the wrong number of stages', async () => {
    const model = fixture('residual add block').build();
    const scheduler = rewriting('short', { place: (stages) => ({ stages: stages.slice(0, 1) }) });
    const cluster = await startCluster(model, [validCuts(model)[0]!], 2, { scheduler, waitReady: false });
    const error = await cluster.coordinator.waitUntilReady({ timeoutMs: 30_000 }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: DinferErrorCode.SCHEDULER_INVALID });
    expect((error as Error).message).toContain('1 stage entries for 2 stages');
  });

  it('fails a request with a clear error when route() answers an id it was not offered', async () => {
    const model = fixture('residual add block').build();
    const scheduler = rewriting('wrong-route', { route: () => 'w999' });
    const { coordinator } = await startCluster(model, [validCuts(model)[0]!], 2, { scheduler });
    const inputs = sampleInputs(model, 1);
    const error = await coordinator
      .infer('m', await Promise.all(inputs.map((t) => fromTfTensor(t))))
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: DinferErrorCode.SCHEDULER_INVALID });
    expect((error as Error).message).toMatch(
      /scheduler "wrong-route" returned an invalid route: stage 0: "w999"/,
    );
    tf.dispose(inputs);
  });
});

describe('coordinator versions (hot swap)', () => {
  function variant(seed: number): tf.LayersModel {
    const model = fixture('small CNN').build();
    // Same architecture, different weights: a "fine-tuned" version.
    for (const layer of model.layers) {
      const weights = layer.getWeights();
      if (weights.length === 0) continue;
      const shifted = weights.map((w, i) => tf.tidy(() => w.add(tf.scalar(((seed * 7 + i) % 5) * 0.01))));
      layer.setWeights(shifted);
      tf.dispose(shifted);
    }
    return model;
  }

  it('switches versions under a steady stream without failing a request, and rolls back', async () => {
    const v1 = fixture('small CNN').build();
    const v2 = variant(2);
    const cuts = validCuts(v1);
    const cluster = await startCluster(v1, [cuts[1]!], 2);
    const inputs = sampleInputs(v1, 1, 11);
    const data = await Promise.all(inputs.map((t) => fromTfTensor(t)));
    const want = { '1': await expected(v1, inputs), '2': await expected(v2, inputs) };
    let stop = false;
    const seen: string[] = [];
    const stream = async () => {
      while (!stop) {
        const r = await cluster.coordinator.infer('m', data);
        expectOutputsClose(r.outputs, want[r.version as '1' | '2']);
        seen.push(r.version);
      }
    };
    const streams = [stream(), stream(), stream()];
    await new Promise((r) => setTimeout(r, 50));
    await cluster.coordinator.deploy({ name: 'm', version: '2', model: v2, cuts: [cuts[1]!] });
    expect(cluster.coordinator.models()[0]).toMatchObject({ version: '2', versions: ['1', '2'] });
    const afterSwitch = await cluster.coordinator.infer('m', data);
    expect(afterSwitch.version).toBe('2');
    expectOutputsClose(afterSwitch.outputs, want['2']);
    await new Promise((r) => setTimeout(r, 50));
    await cluster.coordinator.activate('m', '1'); // rollback
    const afterRollback = await cluster.coordinator.infer('m', data);
    expect(afterRollback.version).toBe('1');
    expectOutputsClose(afterRollback.outputs, want['1']);
    await new Promise((r) => setTimeout(r, 50));
    stop = true;
    await Promise.all(streams);
    expect(seen).toContain('1');
    expect(seen).toContain('2');
    // The explicit version route still reaches the standby version.
    const pinned = await cluster.coordinator.infer('m', data, { version: '2' });
    expect(pinned.version).toBe('2');
    expectOutputsClose(pinned.outputs, want['2']);
    const states = Object.fromEntries(cluster.coordinator.versions('m').map((v) => [v.version, v.state]));
    expect(states).toEqual({ '1': 'active', '2': 'standby' });
    tf.dispose(inputs);
  });

  it('keeps the old version serving when the new one fails its warm-up check', async () => {
    const v1 = fixture('small CNN').build();
    const broken = fixture('small CNN').build();
    const dense = broken.layers.find((l) => l.getClassName() === 'Dense')!;
    const poisoned = dense.getWeights().map((w) => tf.fill(w.shape, Number.NaN));
    dense.setWeights(poisoned);
    tf.dispose(poisoned);
    const cuts = validCuts(v1);
    const cluster = await startCluster(v1, [cuts[1]!], 2);
    await expect(
      cluster.coordinator.deploy({ name: 'm', version: '2', model: broken, cuts: [cuts[1]!] }),
    ).rejects.toMatchObject({ code: DinferErrorCode.ROLLOUT_FAILED, message: expect.stringMatching(/NaN/) });
    const inputs = sampleInputs(v1, 1, 4);
    const r = await cluster.coordinator.infer('m', await Promise.all(inputs.map((t) => fromTfTensor(t))));
    expect(r.version).toBe('1');
    expectOutputsClose(r.outputs, await expected(v1, inputs));
    expect(cluster.coordinator.versions('m').find((v) => v.version === '2')).toMatchObject({
      state: 'failed',
    });
    await expect(
      cluster.coordinator.infer('m', await Promise.all(inputs.map((t) => fromTfTensor(t))), { version: '2' }),
    ).rejects.toMatchObject({ code: DinferErrorCode.UNKNOWN_MODEL });
    tf.dispose(inputs);
  });

  it('serves two models side by side and unloads one', async () => {
    const a = fixture('small CNN').build();
    const b = fixture('sequential MLP').build();
    const cluster = await startCluster(a, [validCuts(a)[1]!], 2);
    await cluster.coordinator.deploy({ name: 'other', model: b, cuts: [validCuts(b)[0]!] });
    expect(
      cluster.coordinator
        .models()
        .map((m) => m.name)
        .sort(),
    ).toEqual(['m', 'other']);
    const inputs = sampleInputs(b, 2, 1);
    const r = await cluster.coordinator.infer('other', await Promise.all(inputs.map((t) => fromTfTensor(t))));
    expectOutputsClose(r.outputs, await expected(b, inputs));
    expect(r.degraded).toBe(false);
    await cluster.coordinator.unload('other');
    await expect(
      cluster.coordinator.infer('other', await Promise.all(inputs.map((t) => fromTfTensor(t)))),
    ).rejects.toMatchObject({ code: DinferErrorCode.UNKNOWN_MODEL });
    await waitFor(() => cluster.workers.every((w) => w.stages().every((k) => k.startsWith('m@'))));
    tf.dispose(inputs);
  });
});

async function waitFor(condition: () => boolean, timeoutMs = 20_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > until) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}
