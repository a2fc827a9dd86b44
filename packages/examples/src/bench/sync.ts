/**
 * `pnpm bench:sync`: bytes on the wire and time to roll ResNet50 shards out to workers.
 *
 * One process: a coordinator and 2 in-process workers (each with its own disk cache) over
 * core's in-memory transport, whose master side is wrapped to count every request it sends
 * (JSON header + attachment bytes of the `blob.*` and `stage.*` messages). Scenarios:
 *
 * 1. full ship of the float32 model to 2 fresh workers;
 * 2. 5% update: the last 5% of the weight tensors (by count, layer by layer from the input:
 *    the head, `conv5_block3_*` and `predictions`) changed by a small relative amount (`w *= 1 + 1e-3 * n`, n ~ N(0, 1)): a fine-tuned head;
 * 3. SGD-like update of every weight (`w -= 1e-3 * n`, n ~ N(0, 1)) on top of 2;
 * 4. restart of a worker with a warm cache (the shards stay on its disk);
 * 5. and 6. full ship of the float16 and uint8 quantized model to 2 fresh workers.
 *
 * Bytes are printed as a ratio to the raw float32 shard bytes times the workers that receive
 * them. Time is from `deploy()` (or the worker's start) until the version serves on every
 * worker: it includes loading and warming up ResNet50 on both workers, which share this
 * process's single TF.js backend. Targets: the 5% update <= 7%, a warm restart < 1%.
 *
 * @module
 */

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  type Coordinator,
  createCoordinator,
  createWorker,
  type DinferWorker,
  describeBackend,
  type WeightQuantization,
} from '@dinfer/core';
import { loadExampleModel, seededRandom } from '@dinfer/core/models';
import { createBlobStore, initBackend } from '@dinfer/core/node';
import {
  bytesOf,
  type CountingTransport,
  countingTransport,
  MemoryNetwork,
  memoryTransport,
} from '@dinfer/core/testing';
import * as tf from '@tensorflow/tfjs';

const TOKEN = 'bench-sync-token';
const SYNC_TYPES = ['blob.status', 'blob.chunk', 'blob.delta', 'stage.load'];

interface Cluster {
  readonly coordinator: Coordinator;
  readonly counter: CountingTransport;
  readonly workers: DinferWorker[];
  readonly dirs: string[];
  startWorker(dir: string): Promise<DinferWorker>;
  stop(): Promise<void>;
}

async function startCluster(): Promise<Cluster> {
  const network = new MemoryNetwork();
  const counter = countingTransport(memoryTransport({ network }));
  const coordinator = createCoordinator({
    transport: counter.transport,
    token: TOKEN,
    listen: 'memory:0',
    heartbeat: { enabled: false },
    pingIntervalMs: 0,
  });
  const { address } = await coordinator.start();
  const workers: DinferWorker[] = [];
  const dirs: string[] = [];
  return {
    coordinator,
    counter,
    workers,
    dirs,
    async startWorker(dir) {
      const worker = createWorker({
        transport: memoryTransport({ network }),
        master: address,
        token: TOKEN,
        store: createBlobStore({ dir }),
        capabilities: { backend: tf.getBackend(), cores: 1, memoryBytes: 8 * 2 ** 30, score: 1 },
        reconnect: false,
      });
      workers.push(worker);
      await worker.start();
      return worker;
    },
    async stop() {
      await Promise.allSettled(workers.map((w) => w.stop()));
      await coordinator.stop();
      for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
    },
  };
}

function freshDir(cluster: Cluster): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'dinfer-bench-sync-'));
  cluster.dirs.push(dir);
  return dir;
}

async function waitFor(condition: () => boolean, timeoutMs = 600_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > until) throw new Error('bench: condition not reached in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Standard normal numbers from a seeded uniform source (Box-Muller). */
function normals(seed: number): () => number {
  const random = seededRandom(seed);
  return () => {
    const u = 1 - random.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random.next());
  };
}

/**
 * The weights layer by layer, from the input to the output. (The saved `weightsManifest`
 * follows `model.weights`, which lists every trainable weight before the non-trainable ones,
 * so its last 5% are BatchNormalization statistics, not the head.)
 */
function layerOrder(model: tf.LayersModel): tf.LayerVariable[] {
  return model.layers.flatMap((layer) => layer.weights);
}

/**
 * Changes the weights of `model` whose index (in layer order, see {@link layerOrder})
 * `pick` accepts: `w = change(w, n)` with n ~ N(0, 1).
 */
function perturb(
  model: tf.LayersModel,
  pick: (index: number, total: number) => boolean,
  change: (w: number, n: number) => number,
  seed: number,
): number {
  const n = normals(seed);
  const ordered = layerOrder(model);
  const total = ordered.length;
  const indexOf = new Map(ordered.map((w, i) => [w, i]));
  let changed = 0;
  for (const layer of model.layers) {
    if (layer.weights.length === 0) continue;
    const picked = layer.weights.map((w) => pick(indexOf.get(w) ?? -1, total));
    if (!picked.some(Boolean)) continue;
    const values = layer.getWeights().map((w, k) => {
      if (!picked[k]) return w.clone();
      changed++;
      const data = (w.dataSync() as Float32Array).map((v) => change(v, n()));
      return tf.tensor(data, w.shape, w.dtype);
    });
    layer.setWeights(values);
    tf.dispose(values);
  }
  return changed;
}

interface Row {
  readonly scenario: string;
  readonly workers: number;
  readonly bytes: number;
  readonly ratio: number;
  readonly seconds: number;
  readonly note: string;
}

const rows: Row[] = [];

function record(
  scenario: string,
  workers: number,
  rawBytes: number,
  counter: CountingTransport,
  since: number,
  seconds: number,
  note = '',
): void {
  const sent = counter.sent.slice(since);
  const bytes = bytesOf(sent, SYNC_TYPES);
  const deltas = sent.filter((r) => r.type === 'blob.delta').length;
  const chunks = sent.filter((r) => r.type === 'blob.chunk').length;
  const row: Row = {
    scenario,
    workers,
    bytes,
    ratio: bytes / (rawBytes * workers),
    seconds,
    note: `${chunks} chunks, ${deltas} deltas${note ? `; ${note}` : ''}`,
  };
  rows.push(row);
  console.log(
    `${scenario.padEnd(34)} ${String(workers).padStart(2)}  ${(bytes / 1e6).toFixed(2).padStart(9)} MB  ${(row.ratio * 100).toFixed(2).padStart(7)}%  ${seconds.toFixed(1).padStart(6)} s  ${row.note}`,
  );
}

/** Where the next scenario's requests start in `counter.sent`. */
function snapshot(counter: CountingTransport): number {
  return counter.sent.length;
}

async function timed<T>(task: () => Promise<T>): Promise<[T, number]> {
  const start = performance.now();
  const result = await task();
  return [result, (performance.now() - start) / 1000];
}

async function fullShip(quantization: WeightQuantization | undefined, rawBytes: number): Promise<void> {
  const { model } = await loadExampleModel('resnet50');
  const cluster = await startCluster();
  try {
    await cluster.startWorker(freshDir(cluster));
    await cluster.startWorker(freshDir(cluster));
    const since = snapshot(cluster.counter);
    const [, seconds] = await timed(async () => {
      await cluster.coordinator.deploy({
        name: 'resnet50',
        model,
        cuts: [],
        ...(quantization ? { weightQuantization: quantization } : {}),
      });
      await cluster.coordinator.waitUntilReady({ minWorkers: 2, timeoutMs: 600_000 });
      await waitFor(() => cluster.workers.every((w) => w.stages().length === 1));
    });
    record(`full ship, ${quantization ?? 'float32'}`, 2, rawBytes, cluster.counter, since, seconds);
  } finally {
    await cluster.stop();
    model.dispose();
  }
}

async function main(): Promise<void> {
  const backend = await initBackend();
  console.log(
    `bench:sync, ${describeBackend(backend)}: ResNet50, coordinator + 2 in-process workers (memory transport)`,
  );
  const v1 = (await loadExampleModel('resnet50')).model;
  const weights = layerOrder(v1);
  const rawBytes = weights.reduce((sum, w) => sum + w.shape.reduce<number>((a, b) => a * (b ?? 1), 1) * 4, 0);
  const tensors = weights.length;
  const headCount = Math.ceil(tensors * 0.05);
  const headBytes = weights
    .slice(tensors - headCount)
    .reduce((sum, w) => sum + w.shape.reduce<number>((a, b) => a * (b ?? 1), 1) * 4, 0);
  console.log(
    `raw float32 shard: ${(rawBytes / 1e6).toFixed(2)} MB in ${tensors} weight tensors; the last 5% (${headCount} tensors) hold ${((headBytes / rawBytes) * 100).toFixed(1)}% of the bytes\n`,
  );
  console.log(
    `${'scenario'.padEnd(34)} wk  ${'sent'.padStart(12)}  ${'ratio'.padStart(8)}  ${'time'.padStart(8)}  notes`,
  );

  const cluster = await startCluster();
  try {
    const dirs = [freshDir(cluster), freshDir(cluster)];
    await cluster.startWorker(dirs[0]!);
    await cluster.startWorker(dirs[1]!);
    let since = snapshot(cluster.counter);
    let [, seconds] = await timed(async () => {
      await cluster.coordinator.deploy({ name: 'resnet50', version: '1', model: v1, cuts: [] });
      await cluster.coordinator.waitUntilReady({ minWorkers: 2, timeoutMs: 600_000 });
      await waitFor(() => cluster.workers.every((w) => w.stages().length === 1));
    });
    record('full ship, float32', 2, rawBytes, cluster.counter, since, seconds);

    const v2 = (await loadExampleModel('resnet50')).model;
    perturb(
      v2,
      (i, n) => i >= n - headCount,
      (w, z) => w * (1 + 1e-3 * z),
      2,
    );
    since = snapshot(cluster.counter);
    [, seconds] = await timed(() =>
      cluster.coordinator.deploy({ name: 'resnet50', version: '2', model: v2, cuts: [] }),
    );
    record(
      'update: last 5% of tensors',
      2,
      rawBytes,
      cluster.counter,
      since,
      seconds,
      `w *= 1 + 1e-3 n on ${headCount} tensors`,
    );

    const v3 = (await loadExampleModel('resnet50')).model;
    v3.setWeights(v2.getWeights());
    perturb(
      v3,
      () => true,
      (w, z) => w - 1e-3 * z,
      3,
    );
    since = snapshot(cluster.counter);
    [, seconds] = await timed(() =>
      cluster.coordinator.deploy({ name: 'resnet50', version: '3', model: v3, cuts: [] }),
    );
    record('update: SGD step on every weight', 2, rawBytes, cluster.counter, since, seconds, 'w -= 1e-3 n');

    // Restart one worker on its warm cache.
    const old = cluster.workers[0]!;
    await old.stop();
    await waitFor(() => cluster.coordinator.status().workers.length === 1);
    since = snapshot(cluster.counter);
    [, seconds] = await timed(async () => {
      const restarted = await cluster.startWorker(dirs[0]!);
      await waitFor(() => restarted.stages().length === 1);
    });
    record('restart with a warm cache', 1, rawBytes, cluster.counter, since, seconds);
    v2.dispose();
    v3.dispose();
  } finally {
    await cluster.stop();
    v1.dispose();
  }

  await fullShip('float16', rawBytes);
  await fullShip('uint8', rawBytes);

  const update = rows.find((r) => r.scenario.startsWith('update: last 5%'))!;
  const restart = rows.find((r) => r.scenario.startsWith('restart'))!;
  console.log(
    `\ntargets: 5% update ${(update.ratio * 100).toFixed(2)}% (target <= 7%: ${update.ratio <= 0.07 ? 'met' : 'MISSED'}), warm restart ${(restart.ratio * 100).toFixed(3)}% (target < 1%: ${restart.ratio < 0.01 ? 'met' : 'MISSED'})`,
  );
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
