import { mkdtemp, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  type Coordinator,
  createCoordinator,
  createWorker,
  type DinferWorker,
  saveLayersModel,
} from '@dinfer/core';
import { createBlobStore, initBackend } from '@dinfer/core/node';
import { MemoryNetwork, memoryTransport } from '@dinfer/core/testing';
import * as tf from '@tensorflow/tfjs';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CliIo } from '../src/cli/common.js';
import { runCli } from '../src/cli/program.js';
import { createHttpApi } from '../src/http/api.js';
import {
  createModelRepository,
  type ModelRepository,
  REASON_NOT_LOADED,
  REASON_STANDBY,
  type RepositoryIndexEntry,
} from '../src/repository/model-repository.js';
import { startRepositoryPoller } from '../src/repository/repository-poller.js';
import { overflowHead } from './repository-fixtures.js';

const TOKEN = 'repository-routes-token';
/** Model control is on, behind this admin token. */
const ADMIN_TOKEN = 'repository-routes-admin-token';
const ADMIN = { authorization: `Bearer ${ADMIN_TOKEN}` };
const INPUT = [0.3, -0.7, 1.1, 0.2];

let root: string;
let repo: string;
let coordinator: Coordinator;
let repository: ModelRepository;
let app: FastifyInstance;
const workers: DinferWorker[] = [];

/**
 * A small dense model whose weights depend on `seed`. `broken`: `nan` sets every weight to NaN;
 * `overflow` gives the hidden layer a huge (finite) bias, so outputs overflow to NaN.
 */
function tinyModel(seed: number, broken?: 'nan' | 'overflow'): tf.LayersModel {
  const input = tf.input({ shape: [4], name: 'x' });
  const h = tf.layers.dense({ units: 8, activation: 'relu', name: 'h' }).apply(input) as tf.SymbolicTensor;
  const out = tf.layers.dense({ units: 3, activation: 'softmax', name: 'out' }).apply(h) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: out, name: 'tiny' });
  let state = seed;
  const next = () => {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    return broken === 'nan' ? Number.NaN : state / 2 ** 31 - 0.5;
  };
  model.setWeights(model.getWeights().map((w) => tf.tensor(Array.from({ length: w.size }, next), w.shape)));
  if (broken === 'overflow') overflowHead(model, 'h', 'out');
  return model;
}

async function saveVersion(
  name: string,
  version: string,
  seed: number,
  broken?: 'nan' | 'overflow',
): Promise<void> {
  const model = tinyModel(seed, broken);
  await saveLayersModel(model, path.join(repo, name, version));
  model.dispose();
}

/** The output of a version computed here, independently of the cluster. */
function expected(seed: number): number[] {
  const model = tinyModel(seed);
  const out = tf.tidy(() => Array.from((model.predict(tf.tensor2d([INPUT])) as tf.Tensor).dataSync()));
  model.dispose();
  return out;
}

async function infer(name: string): Promise<{ status: number; version: string; data: number[] }> {
  const res = await app.inject({
    method: 'POST',
    url: `/v2/models/${name}/infer`,
    payload: { inputs: [{ name: 'x', shape: [1, 4], datatype: 'FP32', data: INPUT }] },
  });
  const body = res.json() as { model_version: string; outputs: { data: number[] }[] };
  return { status: res.statusCode, version: body.model_version, data: body.outputs?.[0]?.data ?? [] };
}

function expectClose(got: readonly number[], want: readonly number[]): void {
  expect(got).toHaveLength(want.length);
  got.forEach((g, i) => {
    expect(Math.abs(g - want[i]!)).toBeLessThanOrEqual(1e-5 + 1e-4 * Math.abs(want[i]!));
  });
}

async function index(query = ''): Promise<RepositoryIndexEntry[]> {
  const res = await app.inject({ method: 'GET', url: `/v2/repository/index${query}` });
  expect(res.statusCode).toBe(200);
  return res.json() as RepositoryIndexEntry[];
}

function stateOf(entries: readonly RepositoryIndexEntry[], name: string, version: string) {
  const entry = entries.find((e) => e.name === name && e.version === version);
  return entry && { state: entry.state, reason: entry.reason };
}

async function load(name: string, body?: unknown) {
  const res = await app.inject({
    method: 'POST',
    url: `/v2/repository/models/${name}/load`,
    headers: ADMIN,
    ...(body === undefined ? {} : { payload: body as Record<string, unknown> }),
  });
  return { status: res.statusCode, body: res.json() as Record<string, unknown> };
}

beforeAll(async () => {
  await initBackend();
  root = await mkdtemp(path.join(tmpdir(), 'dinfer-repo-routes-'));
  repo = path.join(root, 'repo');
  await saveVersion('tiny', '1', 1);
  await saveVersion('tiny', '2', 2);
  await saveVersion('other', '1', 11);
  const network = new MemoryNetwork();
  coordinator = createCoordinator({
    transport: memoryTransport({ network }),
    token: TOKEN,
    listen: 'memory:0',
    heartbeat: { enabled: false },
    pingIntervalMs: 0,
    retry: { initialDelayMs: 5, maxDelayMs: 20 },
  });
  const { address } = await coordinator.start();
  repository = createModelRepository({
    coordinator,
    dir: repo,
    planning: { stages: 1, profile: false },
    rolloutTimeoutMs: 30_000,
  });
  const deployments = await repository.loadAll();
  expect(deployments.map((d) => `${d.name}@${d.version}`).sort()).toEqual(['other@1', 'tiny@2']);
  for (const name of ['w1', 'w2']) {
    const worker = createWorker({
      transport: memoryTransport({ network }),
      master: address,
      token: TOKEN,
      name,
      store: createBlobStore({ dir: await mkdtemp(path.join(root, `${name}-`)) }),
      capabilities: { backend: 'wasm', cores: 1, memoryBytes: 1024 ** 3, score: 1 },
      reconnect: false,
    });
    await worker.start();
    workers.push(worker);
  }
  await coordinator.waitUntilReady({ timeoutMs: 60_000 });
  app = createHttpApi(coordinator, { repository, modelControl: true, adminToken: ADMIN_TOKEN });
});

afterAll(async () => {
  await app?.close();
  await coordinator?.stop();
  await Promise.allSettled(workers.map((w) => w.stop()));
  await rm(root, { recursive: true, force: true });
});

describe('repository routes', () => {
  it('indexes every version on disk and in the coordinator', async () => {
    const entries = await index();
    expect(entries).toEqual([
      { name: 'other', version: '1', state: 'READY', reason: '' },
      { name: 'tiny', version: '1', state: 'UNAVAILABLE', reason: REASON_NOT_LOADED },
      { name: 'tiny', version: '2', state: 'READY', reason: '' },
    ]);
    expect((await index('?ready=true')).map((e) => `${e.name}@${e.version}`)).toEqual(['other@1', 'tiny@2']);
    const triton = await app.inject({
      method: 'POST',
      url: '/v2/repository/index',
      payload: { ready: true },
    });
    expect((triton.json() as RepositoryIndexEntry[]).length).toBe(2);
    const { version, data } = await infer('tiny');
    expect(version).toBe('2');
    expectClose(data, expected(2));
  });

  it('loads an older version (hot swap), then re-activates the newest without reading it again', async () => {
    const down = await load('tiny', { parameters: { version: '1' } });
    expect(down).toEqual({
      status: 200,
      body: { name: 'tiny', version: '1', state: 'READY', action: 'deployed', previous: '2' },
    });
    let entries = await index();
    expect(stateOf(entries, 'tiny', '1')).toEqual({ state: 'READY', reason: '' });
    expect(stateOf(entries, 'tiny', '2')).toEqual({ state: 'UNAVAILABLE', reason: REASON_STANDBY });
    let answer = await infer('tiny');
    expect(answer.version).toBe('1');
    expectClose(answer.data, expected(1));

    // Without a version: the newest in the repository, still in standby.
    const up = await load('tiny');
    expect(up.body).toEqual({
      name: 'tiny',
      version: '2',
      state: 'READY',
      action: 'activated',
      previous: '1',
    });
    answer = await infer('tiny');
    expect(answer.version).toBe('2');
    expectClose(answer.data, expected(2));
    // A numeric version parameter is its digits; the active version is left as it is.
    expect((await load('tiny', { parameters: { version: 2 } })).body.action).toBe('unchanged');
    entries = await index();
    expect(stateOf(entries, 'tiny', '1')).toEqual({ state: 'UNAVAILABLE', reason: REASON_STANDBY });
  });

  it('answers 404 for unknown models and versions and 400 for malformed bodies', async () => {
    const unknownModel = await load('nope');
    expect(unknownModel.status).toBe(404);
    expect(unknownModel.body.error).toMatch(/unknown model "nope".*known models: "other", "tiny"/);
    const unknownVersion = await load('tiny', { parameters: { version: '9' } });
    expect(unknownVersion.status).toBe(404);
    expect(unknownVersion.body.error).toMatch(/no version "9".*known versions: 1, 2/);
    for (const [body, pattern] of [
      [{ parameters: { version: {} } }, /"parameters.version" must be a version name/],
      [{ parameters: { version: '../1' } }, /"parameters.version" must be a version name/],
      [{ parameters: 5 }, /"parameters" must be an object/],
      [{ parameters: { config: '{}' } }, /unknown parameter "config"; accepted: version/],
      [{ version: '1' }, /unknown body field "version"/],
    ] as const) {
      const res = await load('tiny', body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.error).toMatch(pattern);
    }
    const badIndex = await app.inject({
      method: 'POST',
      url: '/v2/repository/index',
      payload: { ready: 'yes' },
    });
    expect(badIndex.statusCode).toBe(400);
    expect((await app.inject({ method: 'GET', url: '/v2/repository/index?ready=maybe' })).statusCode).toBe(
      400,
    );
  });

  it('keeps the active version serving when a rollout fails, and says why', async () => {
    await saveVersion('tiny', '3', 3);
    await truncate(path.join(repo, 'tiny', '3', 'group1-shard1of1.bin'), 16);
    const corrupt = await load('tiny', { parameters: { version: '3' } });
    expect(corrupt.status).toBe(422);
    expect(corrupt.body.code).toBe('DINFER_ERR_ROLLOUT_FAILED');
    expect(corrupt.body.error).toMatch(/tiny@3: .*holds 16 bytes but its 4 weights need/);

    // NaN weights are refused before anything is shipped.
    await saveVersion('tiny', 'nan', 6, 'nan');
    const nan = await load('tiny', { parameters: { version: 'nan' } });
    expect(nan.status).toBe(422);
    expect(nan.body.error).toMatch(/tiny@nan: weight h\/kernel(_\d+)? has 32 non-finite value\(s\)/);

    // Finite weights whose outputs overflow: refused by the warm-up check on the workers.
    await saveVersion('tiny', '4', 4, 'overflow');
    const overflow = await load('tiny'); // the newest available: 4
    expect(overflow.status).toBe(422);
    expect(overflow.body.error).toMatch(/tiny@4: warm-up check: the model produced NaN or Infinity/);

    const entries = await index();
    expect(stateOf(entries, 'tiny', '2')).toEqual({ state: 'READY', reason: '' });
    expect(stateOf(entries, 'tiny', '3')?.state).toBe('UNAVAILABLE');
    expect(stateOf(entries, 'tiny', '3')?.reason).toMatch(/holds 16 bytes/);
    expect(stateOf(entries, 'tiny', 'nan')?.reason).toMatch(/^load failed: .*non-finite/);
    expect(stateOf(entries, 'tiny', '4')).toEqual({
      state: 'UNAVAILABLE',
      reason: expect.stringMatching(/^load failed: .*NaN or Infinity/),
    });
    // The failed versions' deployments were dropped; version 2 still answers.
    expect(
      coordinator
        .versions('tiny')
        .map((v) => `${v.version}:${v.state}`)
        .sort(),
    ).toEqual(['1:standby', '2:active']);
    const answer = await infer('tiny');
    expect(answer.version).toBe('2');
    expectClose(answer.data, expected(2));
  });

  it('polls for new versions, waits until their files are stable, and keeps one standby version', async () => {
    const poller = startRepositoryPoller(repository, { intervalMs: 3_600_000 });
    try {
      // Version 4 (NaN) was tried with these files already: nothing to do.
      expect(await poller.pollOnce()).toEqual([]);
      await saveVersion('tiny', '5', 5);
      expect(await poller.pollOnce()).toEqual([{ type: 'waiting', name: 'tiny', version: '5' }]);
      expect(await poller.pollOnce()).toEqual([
        { type: 'loaded', outcome: { name: 'tiny', version: '5', previous: '2', action: 'deployed' } },
      ]);
      expect(await poller.pollOnce()).toEqual([]);
      // Version 1 was the older standby version: unloaded; 2 is kept for rollback.
      expect(
        coordinator
          .versions('tiny')
          .map((v) => `${v.version}:${v.state}`)
          .sort(),
      ).toEqual(['2:standby', '5:active']);
      const answer = await infer('tiny');
      expect(answer.version).toBe('5');
      expectClose(answer.data, expected(5));
      // A manual rollback is not undone by the next pass.
      expect((await load('tiny', { parameters: { version: '2' } })).body.action).toBe('activated');
      expect(await poller.pollOnce()).toEqual([]);
      expect((await infer('tiny')).version).toBe('2');
    } finally {
      await poller.stop();
    }
  });

  it('unloads a version or a whole model', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/v2/repository/models/tiny/unload',
      headers: ADMIN,
      payload: { parameters: { version: '5' } },
    });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ name: 'tiny', version: '5', state: 'UNAVAILABLE' });
    const active = await app.inject({
      method: 'POST',
      url: '/v2/repository/models/tiny/unload',
      headers: ADMIN,
      payload: { parameters: { version: '2' } },
    });
    // The only version left is the active one: unloading it unloads the model.
    expect(active.statusCode).toBe(200);
    const whole = await app.inject({
      method: 'POST',
      url: '/v2/repository/models/other/unload',
      headers: ADMIN,
    });
    expect(whole.json()).toEqual({ name: 'other', state: 'UNAVAILABLE' });
    expect((await infer('other')).status).toBe(404);
    const again = await app.inject({
      method: 'POST',
      url: '/v2/repository/models/other/unload',
      headers: ADMIN,
    });
    expect(again.statusCode).toBe(404);
    const entries = await index();
    expect(stateOf(entries, 'other', '1')).toEqual({ state: 'UNAVAILABLE', reason: REASON_NOT_LOADED });
    // Loading it again reads it from the repository.
    const back = await load('other');
    expect(back.body).toEqual({ name: 'other', version: '1', state: 'READY', action: 'deployed' });
    const answer = await infer('other');
    expect(answer.version).toBe('1');
    expectClose(answer.data, expected(11));
  });
});

describe('dinfer model', () => {
  let url: string;
  const run = async (...args: string[]) => {
    const out: string[] = [];
    const err: string[] = [];
    const io: CliIo = { out: (t) => out.push(t), err: (t) => err.push(t) };
    const code = await runCli(
      ['node', 'dinfer', 'model', ...args, '--url', url, '--admin-token-file', tokenFile],
      io,
    );
    return { code, out: out.join(''), err: err.join('') };
  };
  let tokenFile = '';

  beforeAll(async () => {
    tokenFile = path.join(root, 'admin-token');
    await writeFile(tokenFile, `${ADMIN_TOKEN}\n`, { mode: 0o600 });
    url = await app.listen({ host: '127.0.0.1', port: 0 });
  });

  it('lists, loads and unloads over HTTP', async () => {
    const list = await run('list');
    expect(list.code).toBe(0);
    const lines = list.out.trim().split('\n');
    expect(lines[0]).toMatch(/^MODEL\s+VERSION\s+STATE\s+REASON$/);
    expect(lines).toContainEqual(expect.stringMatching(/^other\s+1\s+READY$/));
    expect(lines).toContainEqual(expect.stringMatching(/^tiny\s+3\s+UNAVAILABLE\s+.*holds 16 bytes/));
    expect((await run('list', '--ready')).out.trim().split('\n').slice(1)).toEqual([
      expect.stringMatching(/^other\s+1\s+READY$/),
    ]);

    const loaded = await run('load', 'tiny', '--version', '5');
    expect(loaded).toEqual({ code: 0, out: 'tiny: version 5 loaded and active', err: '' });
    expect((await infer('tiny')).version).toBe('5');
    const rolledBack = await run('load', 'tiny', '--version', '1');
    expect(rolledBack.out).toBe('tiny: version 1 loaded and active (was 5)');
    const forward = await run('load', 'tiny', '--version', '5');
    expect(forward.out).toBe('tiny: version 5 active again (was 1)');
    const unloaded = await run('unload', 'tiny', '--version', '1');
    expect(unloaded.out).toBe('tiny: version 1 unloaded');
  });

  it('exits 1 with the server message on failure', async () => {
    const failed = await run('load', 'tiny', '--version', '4');
    expect(failed.code).toBe(1);
    expect(failed.err).toMatch(
      /error: DINFER_ERR_ROLLOUT_FAILED: tiny@4: warm-up check: the model produced NaN or Infinity \(HTTP 422\)/,
    );
    const unknown = await run('unload', 'ghost');
    expect(unknown.code).toBe(1);
    expect(unknown.err).toMatch(/DINFER_ERR_UNKNOWN_MODEL: unknown model "ghost".*\(HTTP 404\)/);
    const out: string[] = [];
    const unreachable = await runCli(['node', 'dinfer', 'model', 'list', '--url', 'http://127.0.0.1:9'], {
      out: (t) => out.push(t),
      err: (t) => out.push(t),
    });
    expect(unreachable).toBe(1);
    expect(out.join('')).toMatch(
      /DINFER_ERR_TRANSPORT_CONNECT: cannot reach the master at http:\/\/127.0.0.1:9/,
    );
    const badUrl = await runCli(['node', 'dinfer', 'model', 'list', '--url', 'ftp://x'], {
      out: () => {},
      err: () => {},
    });
    expect(badUrl).toBe(2);
  });
});

describe('without a repository directory (a master started with --model)', () => {
  it('lists and re-activates what the coordinator holds, and names nothing on disk', async () => {
    const single = createModelRepository({ coordinator, rolloutTimeoutMs: 30_000 });
    expect(single.dir).toBeUndefined();
    for (const [version, seed] of [
      ['1', 21],
      ['2', 22],
    ] as const) {
      await coordinator.deploy(
        { name: 'solo', version, model: tinyModel(seed), cuts: [] },
        { timeoutMs: 30_000 },
      );
    }
    try {
      const solo = async () => (await single.index()).filter((e) => e.name === 'solo');
      expect(await solo()).toEqual([
        { name: 'solo', version: '1', state: 'UNAVAILABLE', reason: REASON_STANDBY },
        { name: 'solo', version: '2', state: 'READY', reason: '' },
      ]);
      // Only what the coordinator holds: no version read from disk is listed.
      const held = coordinator.versions().map((v) => `${v.model}@${v.version}`);
      expect((await single.index()).map((e) => `${e.name}@${e.version}`).sort()).toEqual(held.sort());
      expect((await single.index({ ready: true })).every((e) => e.state === 'READY')).toBe(true);

      expect(await single.load('solo')).toEqual({
        name: 'solo',
        version: '2',
        previous: '2',
        action: 'unchanged',
      });
      expect(await single.load('solo', { version: '1' })).toEqual({
        name: 'solo',
        version: '1',
        previous: '2',
        action: 'activated',
      });
      expect(single.heldVersions('solo').sort()).toEqual(['1', '2']);
      await expect(single.load('solo', { version: '9' })).rejects.toThrow(
        /^model "solo" has no version "9"; known versions: 1, 2$/,
      );
      await expect(single.load('ghost')).rejects.toThrow(/^unknown model "ghost"; known models: .*"solo"/);
      await expect(single.scan()).rejects.toMatchObject({ code: 'DINFER_ERR_INVALID_ARGUMENT' });
      await expect(single.loadAll()).rejects.toThrow(/serves a single model/);
      expect(single.preprocessFor(coordinator.models().find((m) => m.name === 'solo')!)).toBeUndefined();
      expect(await single.unload('solo', { version: '2' })).toEqual({ name: 'solo', version: '2' });
      expect(single.heldVersions('solo')).toEqual(['1']);
    } finally {
      await single.unload('solo').catch(() => {});
    }
    expect(coordinator.versions('solo')).toEqual([]);
  });
});
