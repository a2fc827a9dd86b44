/**
 * Cluster credentials: a master or worker refuses to run without a token unless told
 * `--insecure` (both sides), tokens come from a file or the environment (a flag is visible in
 * `ps`, so it is warned about), short tokens are refused, and the cluster port speaks TLS
 * from the command line: a worker that does not trust the master's certificate never joins.
 */

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { saveLayersModel } from '@dinfer/core';
import { initBackend } from '@dinfer/core/node';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type MasterHandle, type MasterOptions, startMaster } from '../src/cluster/master.js';
import { startWorkerProcess, type WorkerProcessHandle } from '../src/cluster/worker-process.js';
import {
  killAllChildren,
  LOOPBACK_MASTER_ARGS,
  randomToken,
  runBuiltCli,
  spawnCli,
  waitFor,
  withTimeout,
} from './e2e-helpers.js';
import { randomizeWeights } from './fixtures/random-weights.js';

const TLS = fileURLToPath(new URL('./fixtures/tls/', import.meta.url));
const INPUT = [0.5, -1, 2, 0.25];

let dir = '';
let modelJson = '';
let expected: number[] = [];

beforeAll(async () => {
  await initBackend({ backend: 'cpu' });
  dir = await mkdtemp(path.join(tmpdir(), 'dinfer-credentials-'));
  const input = tf.input({ shape: [4], name: 'x' });
  const out = tf.layers.dense({ units: 3, name: 'out' }).apply(input) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: out, name: 'tiny' });
  randomizeWeights(model, 11);
  modelJson = (await saveLayersModel(model, path.join(dir, 'tiny'))).modelJsonPath;
  expected = tf.tidy(() => Array.from((model.predict(tf.tensor2d([INPUT])) as tf.Tensor).dataSync()));
  model.dispose();
});

afterAll(async () => {
  await killAllChildren();
  await rm(dir, { recursive: true, force: true });
});

const LOOPBACK = {
  httpHost: '127.0.0.1',
  httpPort: 0,
  clusterHost: '127.0.0.1',
  clusterPort: 0,
  stages: 1,
  profile: false,
  cacheMaxBytes: 0,
  backend: 'cpu',
} as const satisfies Partial<MasterOptions>;

/** Runs `master` and a worker of `worker` options; checks one inference against predict. */
async function expectServes(
  master: Partial<MasterOptions>,
  worker: Omit<Parameters<typeof startWorkerProcess>[0], 'master'>,
): Promise<void> {
  const handle = await startMaster({ model: modelJson, ...LOOPBACK, ...master });
  let joined: WorkerProcessHandle | undefined;
  try {
    joined = await startWorkerProcess({ master: handle.clusterAddress, backend: 'cpu', ...worker });
    await withTimeout(handle.ready, 30_000, 'the cluster to be ready');
    const answer = await handle.service.infer('tiny', [
      { name: 'x', dtype: 'float32', shape: [1, 4], data: Float32Array.from(INPUT) },
    ]);
    const got = Array.from(answer.outputs[0]!.data);
    expect(got).toHaveLength(expected.length);
    for (const [i, g] of got.entries()) expect(Math.abs(g - expected[i]!)).toBeLessThan(1e-5);
  } finally {
    await joined?.worker.stop();
    await handle.stop();
  }
}

describe('without a cluster token', () => {
  it('startMaster and startWorkerProcess refuse to run, naming the ways to pass one', async () => {
    const master = startMaster({ model: modelJson, ...LOOPBACK });
    await expect(master).rejects.toMatchObject({ code: 'DINFER_ERR_CONFIG_INVALID' });
    await expect(master).rejects.toThrow(
      /no cluster token.*--token-file.*DINFER_TOKEN.*openssl rand.*--insecure/,
    );
    const worker = startWorkerProcess({ master: '127.0.0.1:9', backend: 'cpu' });
    await expect(worker).rejects.toThrow(/no cluster token.*pose as the master.*--token-file/);
  });

  it('run with --insecure on both sides', async () => {
    await expectServes({ insecure: true }, { insecure: true });
  });

  it('refuse tokens that are too short, saying how to make a good one', async () => {
    await expect(startMaster({ model: modelJson, ...LOOPBACK, token: 'secret' })).rejects.toThrow(
      /the cluster token is 6 characters; use at least 16 \(make one with: openssl rand -base64 32\)/,
    );
    await expect(startWorkerProcess({ master: '127.0.0.1:9', token: 'secret' })).rejects.toThrow(
      /6 characters/,
    );
  });

  it('take the token from a file', async () => {
    const file = path.join(dir, 'cluster-token');
    await writeFile(file, `${randomToken()}\n`, { mode: 0o600 });
    await expectServes({ tokenFile: file }, { tokenFile: file });
    await expect(
      startMaster({ model: modelJson, ...LOOPBACK, token: randomToken(), tokenFile: file }),
    ).rejects.toThrow(/give the cluster token once/);
  });
});

describe('the CLI', () => {
  it('refuses a master and a worker without a token, with exit 1 and the ways to pass one', async () => {
    const master = await runBuiltCli(['master', '--model', modelJson, ...LOOPBACK_MASTER_ARGS], {
      DINFER_TOKEN: '',
    });
    expect(master.code).toBe(1);
    expect(master.stderr).toMatch(/DINFER_ERR_CONFIG_INVALID: no cluster token/);
    expect(master.stderr).not.toMatch(/loading /);
    const worker = await runBuiltCli(['worker', '--master', '127.0.0.1:9'], { DINFER_TOKEN: '' });
    expect(worker.code).toBe(1);
    expect(worker.stderr).toMatch(/no cluster token/);
    const short = await runBuiltCli(['worker', '--master', '127.0.0.1:9'], { DINFER_TOKEN: 'short' });
    expect(short.code).toBe(1);
    expect(short.stderr).toMatch(/5 characters; use at least 16/);
  });

  it('warns when the token is typed on the command line', async () => {
    const worker = spawnCli('worker', ['worker', '--master', '127.0.0.1:9', '--token', randomToken()]);
    await waitFor('the warning', () => worker.stderr.some((l) => /--token is visible/.test(l)), 20_000);
    expect(worker.stderr.join('\n')).toMatch(/use --token-file or DINFER_TOKEN/);
    worker.process.kill('SIGKILL');
    await worker.exited;
  });
});

describe('TLS on the cluster port', () => {
  const tls = {
    tlsCert: path.join(TLS, 'server.crt'),
    tlsKey: path.join(TLS, 'server.key'),
  };

  it('serves a worker that trusts the master certificate', async () => {
    const token = randomToken();
    await expectServes({ token, ...tls }, { token, tlsCa: path.join(TLS, 'ca.crt') });
  });

  it('never lets a worker that does not trust the certificate join', async () => {
    const token = randomToken();
    const master: MasterHandle = await startMaster({ model: modelJson, ...LOOPBACK, token, ...tls });
    const giveUp = new AbortController();
    try {
      // System CAs only (no --tls-ca): the test CA is not among them. And a plain TCP worker.
      const attempts = [
        startWorkerProcess({
          master: master.clusterAddress,
          token,
          tls: true,
          backend: 'cpu',
          signal: giveUp.signal,
        }),
        startWorkerProcess({ master: master.clusterAddress, token, backend: 'cpu', signal: giveUp.signal }),
      ];
      const settled = Promise.allSettled(attempts);
      await new Promise((resolve) => setTimeout(resolve, 3000));
      expect(master.coordinator.status().workers).toEqual([]);
      giveUp.abort();
      const outcomes = await withTimeout(settled, 10_000, 'the workers to give up');
      expect(outcomes.map((o) => o.status)).toEqual(['rejected', 'rejected']);
    } finally {
      giveUp.abort();
      await master.stop();
    }
  });

  it('dinfer master --tls-cert/--tls-key and dinfer worker --tls-ca serve over TLS', async () => {
    const token = randomToken();
    const env = { DINFER_TOKEN: token, DINFER_BACKEND: 'cpu' };
    const master = spawnCli(
      'tls-master',
      [
        'master',
        '--model',
        modelJson,
        '--stages',
        '1',
        '--no-profile',
        '--no-cache',
        ...LOOPBACK_MASTER_ARGS,
        '--tls-cert',
        tls.tlsCert,
        '--tls-key',
        tls.tlsKey,
      ],
      env,
    );
    const line = (pattern: RegExp) =>
      waitFor(
        `the master to print ${pattern}`,
        () => {
          if (master.hasExited()) throw new Error(`the master exited:\n${master.output()}`);
          return master.stdout.map((l) => pattern.exec(l)).find((m) => m !== null) ?? undefined;
        },
        60_000,
      );
    const [, address] = await line(/^cluster: workers dial (\S+) /);
    const [, url] = await line(/^HTTP: (\S+) /);
    const cacheDir = await mkdtemp(path.join(dir, 'tls-worker-'));
    const worker = spawnCli(
      'tls-worker',
      ['worker', '--master', address!, '--tls-ca', path.join(TLS, 'ca.crt'), '--cache-dir', cacheDir],
      env,
    );
    await line(/^ready: serving model "tiny"$/);
    const res = await fetch(`${url}/v2/models/tiny/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ inputs: [{ name: 'x', shape: [1, 4], datatype: 'FP32', data: INPUT }] }),
      signal: AbortSignal.timeout(30_000),
    });
    expect(res.status).toBe(200);
    const got = ((await res.json()) as { outputs: { data: number[] }[] }).outputs[0]!.data;
    for (const [i, g] of got.entries()) expect(Math.abs(g - expected[i]!)).toBeLessThan(1e-5);
    expect(worker.stdout.join('\n')).toMatch(/^joined /m);
    await killAllChildren();
  });

  it('refuses TLS files with a transport that cannot use them, and half a key pair', async () => {
    const token = randomToken();
    await expect(
      startMaster({ model: modelJson, ...LOOPBACK, token, ...tls, transport: 'socketio' }),
    ).rejects.toThrow(/TLS on the cluster port needs the tcp transport/);
    await expect(startMaster({ model: modelJson, ...LOOPBACK, token, tlsCert: tls.tlsCert })).rejects.toThrow(
      /--tls-cert and --tls-key go together/,
    );
    await expect(
      startMaster({
        model: modelJson,
        ...LOOPBACK,
        token,
        tlsCert: tls.tlsCert,
        tlsKey: path.join(TLS, 'missing.key'),
      }),
    ).rejects.toThrow(/cannot read the TLS key/);
  });
});
