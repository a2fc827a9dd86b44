import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type Coordinator, createCoordinator } from '../src/master/coordinator.js';
import { loadLayersModel } from '../src/model/io.js';
import { initBackend } from '../src/node/backend.js';
import { createBlobStore } from '../src/node/disk-blob-store.js';
import { fromTfTensor } from '../src/tensor/tfjs.js';
import type { TensorData } from '../src/tensor/types.js';
import { bytesOf, type CountingTransport, countingTransport } from '../src/testing/counting-transport.js';
import { MemoryNetwork, memoryTransport } from '../src/testing/memory-transport.js';
import { createWorker, type DinferWorker } from '../src/worker/worker.js';
import { sampleInputs } from './fixtures/models.js';
import { writeQuantizedArtifacts } from './fixtures/quantized-artifacts.js';
import { namedMlp, perturbedCopy } from './fixtures/sync-models.js';

const TOKEN = 'sync-spec-token';
const caps = { backend: 'wasm', cores: 1, memoryBytes: 2 ** 30, score: 1 };
const BLOB_TYPES = ['blob.chunk', 'blob.delta'];

interface Cluster {
  coordinator: Coordinator;
  counting: CountingTransport;
  address: string;
  network: MemoryNetwork;
  workers: DinferWorker[];
  addWorker(cacheDir?: string): Promise<DinferWorker>;
}

const dirs: string[] = [];
const clusters: Cluster[] = [];

beforeAll(async () => {
  await initBackend();
});

afterEach(async () => {
  for (const c of clusters.splice(0)) {
    await Promise.allSettled(c.workers.map((w) => w.stop()));
    await c.coordinator.stop();
  }
});

afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function cacheDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'dinfer-sync-'));
  dirs.push(dir);
  return dir;
}

async function startCluster(chunkBytes: number): Promise<Cluster> {
  const network = new MemoryNetwork();
  const counting = countingTransport(memoryTransport({ network }));
  const coordinator = createCoordinator({
    transport: counting.transport,
    token: TOKEN,
    listen: 'memory:0',
    heartbeat: { enabled: false },
    pingIntervalMs: 0,
    chunkBytes,
    retry: { initialDelayMs: 5, maxDelayMs: 20 },
  });
  const { address } = await coordinator.start();
  const cluster: Cluster = {
    coordinator,
    counting,
    address,
    network,
    workers: [],
    async addWorker(dir = cacheDir()) {
      const worker = createWorker({
        transport: memoryTransport({ network }),
        token: TOKEN,
        master: address,
        store: createBlobStore({ dir: dir }),
        capabilities: caps,
        reconnect: false,
      });
      cluster.workers.push(worker);
      await worker.start();
      return worker;
    },
  };
  clusters.push(cluster);
  return cluster;
}

async function waitFor(condition: () => boolean, timeoutMs = 20_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > until) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function predict(model: tf.LayersModel, input: TensorData): Promise<Float32Array> {
  const y = tf.tidy(
    () => model.predict(tf.tensor(input.data as Float32Array, [...input.shape])) as tf.Tensor,
  );
  const data = (await y.data()) as Float32Array;
  y.dispose();
  return data;
}

async function sample(model: tf.LayersModel): Promise<TensorData> {
  const [x] = sampleInputs(model, 3, 5);
  const data = await fromTfTensor(x!);
  x!.dispose();
  return data;
}

function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tolerance: number): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    expect(Math.abs(actual[i]! - expected[i]!)).toBeLessThanOrEqual(
      tolerance * Math.max(1, Math.abs(expected[i]!)),
    );
  }
}

describe('shard sync through the coordinator', () => {
  it('rolls out a version that shares tensors: only the changed one goes, as a delta', async () => {
    const cluster = await startCluster(64 * 1024);
    const v1 = namedMlp(128);
    const v2 = perturbedCopy(v1, () => namedMlp(128), ['head/kernel', 'd2/kernel']);
    const d1 = await cluster.coordinator.deploy({ name: 'm', version: '1', model: v1, cuts: [] });
    await cluster.addWorker();
    await cluster.addWorker();
    await cluster.coordinator.waitUntilReady({ minWorkers: 2, timeoutMs: 30_000 });
    const fullBytes = bytesOf(cluster.counting.sent, BLOB_TYPES, 'payloadBytes');
    const raw = d1.stages[0]!.blobs.weightBytes + d1.stages[0]!.blobs.topology.byteLength;
    expect(fullBytes).toBeGreaterThan(raw); // two workers
    const mark = cluster.counting.sent.length;
    const d2 = await cluster.coordinator.deploy({ name: 'm', version: '2', model: v2, cuts: [] });
    const update = cluster.counting.sent.slice(mark);
    const shared = new Set(d1.stages[0]!.blobs.tensors.map((t) => t.sha256));
    expect(update.filter((r) => BLOB_TYPES.includes(r.type) && shared.has(String(r.header.sha256)))).toEqual(
      [],
    );
    const deltas = update.filter((r) => r.type === 'blob.delta');
    expect(deltas).toHaveLength(4); // two changed tensors, two workers
    const changedRaw = d2.stages[0]!.blobs.tensors.filter((t) => !shared.has(t.sha256)).reduce(
      (s, t) => s + t.byteLength,
      0,
    );
    const updateBytes = bytesOf(update, BLOB_TYPES, 'payloadBytes');
    console.log(
      `update: ${updateBytes} blob bytes to 2 workers (full: ${fullBytes}; changed tensors: ${2 * changedRaw} raw)`,
    );
    expect(updateBytes).toBeLessThan(2 * changedRaw);
    const input = await sample(v1);
    const r = await cluster.coordinator.infer('m', [input]);
    expect(r.version).toBe('2');
    expect(r.degraded).toBe(false);
    expectClose(r.outputs[0]!.data as Float32Array, await predict(v2, input), 1e-5);
    v1.dispose();
    v2.dispose();
  });

  it('resumes a shard transfer cut by a killed worker from the last acknowledged chunk', async () => {
    const chunkBytes = 16 * 1024;
    const cluster = await startCluster(chunkBytes);
    const model = namedMlp(256);
    const deployment = await cluster.coordinator.deploy({ name: 'm', model, cuts: [] });
    const blobs = deployment.stages[0]!.blobs;
    const big = blobs.tensors.find((t) => t.name === 'd1/kernel')!;
    const total = blobs.weightBytes + blobs.topology.byteLength;
    const ready = cluster.coordinator.waitUntilReady({ minWorkers: 1, timeoutMs: 30_000 });
    const dir = cacheDir();
    let killed: Promise<void> | undefined;
    let first: DinferWorker | undefined;
    cluster.counting.beforeRequest = (request) => {
      const offset = Number(request.header.offset);
      if (killed || request.type !== 'blob.chunk' || request.header.sha256 !== big.sha256) return;
      if (offset >= 4 * chunkBytes) killed = first!.stop(); // abrupt: no drain, mid-transfer
    };
    first = await cluster.addWorker(dir);
    await waitFor(() => killed !== undefined);
    await killed;
    // In one process the stopped runtime's last disk write may still land (a killed process's
    // would not): let it, before another runtime opens the same cache.
    await new Promise((r) => setTimeout(r, 100));
    await waitFor(() => cluster.coordinator.status().workers.length === 0);
    cluster.counting.beforeRequest = undefined;
    const mark = cluster.counting.sent.length;

    const second = createWorker({
      transport: memoryTransport({ network: cluster.network }),
      token: TOKEN,
      master: cluster.address,
      store: createBlobStore({ dir: dir }),
      capabilities: caps,
      reconnect: false,
    });
    cluster.workers.push(second);
    const onDisk = second.store.receivedBytes(big.sha256);
    expect(onDisk).toBeGreaterThanOrEqual(4 * chunkBytes);
    expect(onDisk).toBeLessThan(big.byteLength);
    await second.start();
    await ready;
    const after = cluster.counting.sent.slice(mark);
    const bigChunks = after.filter((r) => r.type === 'blob.chunk' && r.header.sha256 === big.sha256);
    expect(bigChunks[0]!.header.offset).toBe(onDisk);
    const afterBytes = bytesOf(after, BLOB_TYPES, 'payloadBytes');
    console.log(`after the restart: ${afterBytes} of ${total} raw bytes sent (resumed at ${onDisk})`);
    expect(afterBytes).toBeLessThan(total - onDisk);
    expect(second.store.has(big.sha256)).toBe(true); // hash verified on completion
    const input = await sample(model);
    const r = await cluster.coordinator.infer('m', [input]);
    expect(r.degraded).toBe(false);
    expectClose(r.outputs[0]!.data as Float32Array, await predict(model, input), 1e-5);
    model.dispose();
  });

  it('sends a restarted worker with a warm cache less than 1% of the shard bytes', async () => {
    const cluster = await startCluster(64 * 1024);
    const model = namedMlp(256);
    const deployment = await cluster.coordinator.deploy({ name: 'm', model, cuts: [] });
    const dir = cacheDir();
    const first = await cluster.addWorker(dir);
    await cluster.coordinator.waitUntilReady({ minWorkers: 1, timeoutMs: 30_000 });
    const blobs = deployment.stages[0]!.blobs;
    const total = blobs.weightBytes + blobs.topology.byteLength;
    await first.stop();
    await waitFor(() => cluster.coordinator.status().workers.length === 0);
    const mark = cluster.counting.sent.length;
    const second = await cluster.addWorker(dir);
    await waitFor(() => second.stages().length === 1);
    const after = cluster.counting.sent.slice(mark);
    const sentBytes = bytesOf(after, ['blob.status', ...BLOB_TYPES, 'stage.load']);
    console.log(`warm restart: ${sentBytes} bytes (${after.map((r) => r.type).join(', ')}) of ${total}`);
    expect(sentBytes).toBeLessThan(0.01 * total);
    const input = await sample(model);
    const r = await cluster.coordinator.infer('m', [input]);
    expect(r.degraded).toBe(false);
    expectClose(r.outputs[0]!.data as Float32Array, await predict(model, input), 1e-5);
    model.dispose();
  });

  it('ships float16 weights at half the bytes and serves within float16 error', async () => {
    const cluster = await startCluster(64 * 1024);
    const model = namedMlp(128);
    const deployment = await cluster.coordinator.deploy({
      name: 'm',
      model,
      cuts: [],
      weightQuantization: 'float16',
    });
    await cluster.addWorker();
    await cluster.coordinator.waitUntilReady({ minWorkers: 1, timeoutMs: 30_000 });
    const blobs = deployment.stages[0]!.blobs;
    expect(blobs.weightBytes * 2).toBe(blobs.rawWeightBytes);
    expect(bytesOf(cluster.counting.sent, BLOB_TYPES, 'payloadBytes')).toBeLessThan(
      0.55 * blobs.rawWeightBytes + blobs.topology.byteLength,
    );
    const input = await sample(model);
    const r = await cluster.coordinator.infer('m', [input]);
    const expected = await predict(model, input);
    expectClose(r.outputs[0]!.data as Float32Array, expected, 2e-2);
    model.dispose();
  });

  it('ships a model loaded from uint8 artifacts in uint8, and the workers compute what the master does', async () => {
    const cluster = await startCluster(64 * 1024);
    const original = namedMlp(128);
    const dir = cacheDir();
    const written = await writeQuantizedArtifacts(original, dir, (name) =>
      name.endsWith('/kernel') ? 'uint8' : undefined,
    );
    original.dispose();
    const model = await loadLayersModel(dir);
    const deployment = await cluster.coordinator.deploy({ name: 'm', model, cuts: [2] });
    await cluster.addWorker();
    await cluster.coordinator.waitUntilReady({ minWorkers: 1, timeoutMs: 30_000 }); // warm-up check passed
    const shipped = deployment.stages.flatMap((s) => s.blobs.tensors);
    for (const t of shipped) expect(t.byteLength).toBe(written.get(t.name)!.bytes.byteLength);
    const weightBytes = deployment.stages.reduce((n, s) => n + s.blobs.weightBytes, 0);
    const rawBytes = deployment.stages.reduce((n, s) => n + s.blobs.rawWeightBytes, 0);
    const topologyBytes = deployment.stages.reduce((n, s) => n + s.blobs.topology.byteLength, 0);
    expect(weightBytes).toBeLessThan(0.27 * rawBytes);
    const wire = bytesOf(cluster.counting.sent, BLOB_TYPES, 'payloadBytes');
    console.log(`uint8 source: ${wire} blob bytes on the wire for ${rawBytes} float32 weight bytes`);
    expect(wire).toBeLessThanOrEqual(weightBytes + topologyBytes);
    const input = await sample(model);
    const r = await cluster.coordinator.infer('m', [input]);
    expect(r.degraded).toBe(false);
    expect(Array.from(r.outputs[0]!.data as Float32Array)).toEqual(Array.from(await predict(model, input)));
    model.dispose();
  });
});
