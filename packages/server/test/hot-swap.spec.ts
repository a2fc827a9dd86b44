/**
 * The hot-swap test: a master serving a model repository over real TCP and HTTP, two workers,
 * three client loops sending requests without pause while the MNIST CNN is switched from
 * version 1 to version 2 and back (rollback), and a version 3 whose outputs overflow is refused. No request
 * may fail, every answer names its version, and every output equals that version's local
 * `predict`.
 */

import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadLayersModel, saveLayersModel } from '@dinfer/core';
import { mnistCnnAssetPath, mnistTestSet } from '@dinfer/core/models';
import { initBackend } from '@dinfer/core/node';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type MasterHandle, startMaster } from '../src/cluster/master.js';
import { startWorkerProcess, type WorkerProcessHandle } from '../src/cluster/worker-process.js';
import type { RepositoryIndexEntry } from '../src/repository/model-repository.js';
import { overflowHead } from './repository-fixtures.js';

const TOKEN = 'hot-swap-test-token';
/** Model control is on, behind this admin token. */
const ADMIN_TOKEN = 'hot-swap-test-admin-token';
const DIGITS = 8;

let root: string;
let repo: string;
let master: MasterHandle;
const workers: WorkerProcessHandle[] = [];
/** Each test digit as a nested [28][28][1] array. */
const images: number[][][][] = [];
/** The model input's name, from the master's model metadata. */
let inputName = '';
/** version -> expected softmax output of each digit, from the version's own model here. */
const expected = new Map<string, number[][]>();

function predictAll(model: tf.LayersModel, inputs: tf.Tensor4D): number[][] {
  return tf.tidy(() => (model.predict(inputs) as tf.Tensor2D).arraySync());
}

/** Version 2: the same CNN with its dense head changed (scaled and shifted, seeded). */
function perturbHead(model: tf.LayersModel): void {
  const head = model.getLayer('predictions');
  const [kernel, bias] = head.getWeights() as [tf.Tensor, tf.Tensor];
  const changed = tf.tidy(() => [
    kernel.mul(0.6).add(tf.randomNormal(kernel.shape, 0, 0.08, 'float32', 42)),
    bias.add(tf.linspace(-0.5, 0.5, bias.size)),
  ]);
  head.setWeights(changed);
  for (const t of changed) t.dispose();
}

async function writeVersion(version: string, model: tf.LayersModel): Promise<void> {
  await saveLayersModel(model, path.join(repo, 'mnist', version));
}

interface Answer {
  readonly route: 'simple' | 'v2';
  readonly startedAt: number;
  readonly status: number;
  readonly version: string;
  readonly digit: number;
  /** Full output (v2) or the top-5 scores by class (simple). */
  readonly scores: ReadonlyMap<number, number>;
  readonly error?: string;
}

async function request(loop: number, n: number): Promise<Answer> {
  const digit = (loop * 3 + n) % DIGITS;
  const startedAt = performance.now();
  if (loop === 0) {
    const res = await fetch(`${master.httpUrl}/api/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'mnist', input: images[digit] }),
    });
    const body = (await res.json()) as {
      version: string;
      error?: string;
      predictions: { top: { index: number; score: number }[] }[];
    };
    const top = body.predictions?.[0]?.top ?? [];
    return {
      route: 'simple',
      startedAt,
      status: res.status,
      version: body.version,
      digit,
      scores: new Map(top.map((t) => [t.index, t.score])),
      ...(body.error ? { error: body.error } : {}),
    };
  }
  const res = await fetch(`${master.httpUrl}/v2/models/mnist/infer`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      inputs: [{ name: inputName, shape: [1, 28, 28, 1], datatype: 'FP32', data: images[digit]!.flat(2) }],
    }),
  });
  const body = (await res.json()) as { model_version: string; error?: string; outputs: { data: number[] }[] };
  const data = body.outputs?.[0]?.data ?? [];
  return {
    route: 'v2',
    startedAt,
    status: res.status,
    version: body.model_version,
    digit,
    scores: new Map(data.map((v, i) => [i, v])),
    ...(body.error ? { error: body.error } : {}),
  };
}

async function repositoryLoad(version: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${master.httpUrl}/v2/repository/models/mnist/load`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN_TOKEN}` },
    body: JSON.stringify({ parameters: { version } }),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function repositoryIndex(): Promise<RepositoryIndexEntry[]> {
  return (await (await fetch(`${master.httpUrl}/v2/repository/index`)).json()) as RepositoryIndexEntry[];
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

beforeAll(async () => {
  await initBackend();
  root = await mkdtemp(path.join(tmpdir(), 'dinfer-hot-swap-'));
  repo = path.join(root, 'repo');
  // Version 1: the shipped, trained CNN as it is.
  const asset = path.dirname(mnistCnnAssetPath());
  await mkdir(path.join(repo, 'mnist', '1'), { recursive: true });
  for (const file of ['model.json', 'group1-shard1of1.bin']) {
    await copyFile(path.join(asset, file), path.join(repo, 'mnist', '1', file));
  }
  const set = mnistTestSet(DIGITS);
  const v1 = await loadLayersModel(mnistCnnAssetPath());
  const v2 = await loadLayersModel(mnistCnnAssetPath());
  perturbHead(v2);
  expected.set('1', predictAll(v1, set.inputs));
  expected.set('2', predictAll(v2, set.inputs));
  images.push(...(set.inputs.arraySync() as number[][][][]));
  set.inputs.dispose();
  v1.dispose();
  // The versions must be told apart by their outputs for the check to mean anything.
  const gap = Math.max(
    ...expected.get('1')!.flatMap((row, i) => row.map((p, k) => Math.abs(p - expected.get('2')![i]![k]!))),
  );
  expect(gap).toBeGreaterThan(0.05);

  master = await startMaster({
    modelRepo: repo,
    stages: 2,
    profile: false,
    httpHost: '127.0.0.1',
    httpPort: 0,
    clusterHost: '127.0.0.1',
    clusterPort: 0,
    token: TOKEN,
    modelControl: true,
    adminToken: ADMIN_TOKEN,
    // The load below comes from one address faster than the default per-client rate limit.
    rateLimit: 0,
  });
  for (const name of ['worker-a', 'worker-b']) {
    workers.push(
      await startWorkerProcess({
        master: master.clusterAddress,
        token: TOKEN,
        name,
        cacheDir: await mkdtemp(path.join(root, `${name}-`)),
      }),
    );
  }
  await master.ready;
  const metadata = (await (await fetch(`${master.httpUrl}/v2/models/mnist`)).json()) as {
    inputs: { name: string }[];
  };
  inputName = metadata.inputs[0]!.name;
  // Version 2 arrives in the repository after the master started.
  await writeVersion('2', v2);
  v2.dispose();
});

afterAll(async () => {
  await master?.stop();
  await Promise.allSettled(workers.map((w) => w.worker.stop()));
  await rm(root, { recursive: true, force: true });
});

describe('hot swap under load', () => {
  it('switches 1 -> 2 -> 1 with no failed request, and refuses a broken version 3', async () => {
    expect(master.modelName).toBe('mnist');
    expect(master.cuts).toHaveLength(1);
    expect((await repositoryIndex()).map((e) => `${e.version}:${e.state}`)).toEqual([
      '1:READY',
      '2:UNAVAILABLE',
    ]);

    const answers: Answer[] = [];
    let stop = false;
    const loops = [0, 1, 2].map(async (loop) => {
      for (let n = 0; !stop; n++) answers.push(await request(loop, n));
    });
    const marks: Record<string, number> = {};
    try {
      await sleep(400);
      marks.toV2 = performance.now();
      const up = await repositoryLoad('2');
      marks.v2Active = performance.now();
      expect(up).toEqual({
        status: 200,
        body: { name: 'mnist', version: '2', state: 'READY', action: 'deployed', previous: '1' },
      });
      await sleep(400);
      marks.toV1 = performance.now();
      const back = await repositoryLoad('1');
      marks.v1Active = performance.now();
      expect(back.body).toEqual({
        name: 'mnist',
        version: '1',
        state: 'READY',
        action: 'activated',
        previous: '2',
      });
      await sleep(300);

      // Version 3: same architecture, finite weights whose outputs overflow to NaN: shipped,
      // then refused by the warm-up check on the workers; version 1 keeps serving.
      const broken = await loadLayersModel(path.join(repo, 'mnist', '1', 'model.json'));
      overflowHead(broken, 'dense1', 'predictions');
      await writeVersion('3', broken);
      broken.dispose();
      const refused = await repositoryLoad('3');
      expect(refused.status).toBe(422);
      expect(refused.body.code).toBe('DINFER_ERR_ROLLOUT_FAILED');
      expect(refused.body.error).toMatch(/mnist@3: warm-up check: the model produced NaN or Infinity/);
      await sleep(300);
    } finally {
      stop = true;
      await Promise.all(loops);
    }

    const failed = answers.filter((a) => a.status !== 200);
    expect(failed.map((a) => `${a.route} ${a.status} ${a.error}`)).toEqual([]);
    for (const a of answers) {
      const want = expected.get(a.version);
      expect(want, `unexpected version ${a.version}`).toBeDefined();
      const row = want![a.digit]!;
      if (a.route === 'v2') expect(a.scores.size).toBe(10);
      else expect(a.scores.size).toBe(5);
      for (const [k, score] of a.scores) expect(Math.abs(score - row[k]!)).toBeLessThan(1e-4);
      // The simple route's top-5 is the version's own top-5.
      if (a.route === 'simple') {
        const top5 = row
          .map((p, k) => [k, p] as const)
          .sort((x, y) => y[1] - x[1])
          .slice(0, 5)
          .map(([k]) => k);
        expect([...a.scores.keys()].sort()).toEqual(top5.sort());
      }
      // Requests that started after a switch answered run on the new version.
      if (a.startedAt > marks.v1Active!) expect(a.version).toBe('1');
      else if (a.startedAt > marks.v2Active! && a.startedAt < marks.toV1!) expect(a.version).toBe('2');
      else if (a.startedAt < marks.toV2!) expect(a.version).toBe('1');
    }
    const count = (version: string, from: number, to: number) =>
      answers.filter((a) => a.version === version && a.startedAt > from && a.startedAt < to).length;
    expect(count('1', 0, marks.toV2!)).toBeGreaterThan(3);
    expect(count('2', marks.v2Active!, marks.toV1!)).toBeGreaterThan(3);
    expect(count('1', marks.v1Active!, Number.POSITIVE_INFINITY)).toBeGreaterThan(3);
    expect(new Set(answers.map((a) => a.route))).toEqual(new Set(['simple', 'v2']));

    const index = await repositoryIndex();
    expect(index.map((e) => `${e.version}:${e.state}`)).toEqual([
      '1:READY',
      '2:UNAVAILABLE',
      '3:UNAVAILABLE',
    ]);
    expect(index[1]!.reason).toMatch(/^standby/);
    expect(index[2]!.reason).toMatch(/NaN or Infinity/);
    console.info(
      `hot swap: ${answers.length} requests, 0 failed; v1 ${answers.filter((a) => a.version === '1').length}, v2 ${answers.filter((a) => a.version === '2').length}; load v2 ${(marks.v2Active! - marks.toV2!).toFixed(0)} ms, rollback ${(marks.v1Active! - marks.toV1!).toFixed(0)} ms`,
    );
  });
});
