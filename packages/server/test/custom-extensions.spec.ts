/**
 * Custom transports and schedulers through the reference server: modules whose default export
 * makes one (`--transport ./file.js`, `--scheduler ./file.js`, `transportFromModule`), and
 * instances handed to `startMaster`. Real worker processes join over the custom transport, and
 * the custom scheduler's placement is the one the cluster serves with.
 */

import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { type ClusterStatus, DinferErrorCode, isDinferError, saveLayersModel } from '@dinfer/core';
import { initBackend } from '@dinfer/core/node';
import { tcpTransport } from '@dinfer/transport-tcp';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import type { CliIo } from '../src/cli/common.js';
import { runCli } from '../src/cli/program.js';
import { schedulerFromModule, startLocalCluster, startMaster, transportFromModule } from '../src/index.js';
import {
  cleanUpAfterEachTest,
  getJson,
  type InProcessMaster,
  LOOPBACK_MASTER_ARGS,
  maxRelativeError,
  postJson,
  REPO_ROOT,
  randomToken,
  type SimpleAnswer,
  spawnCli,
  spawnWorker,
  startMasterInProcess,
  tempDir,
  waitFor,
  withTimeout,
} from './e2e-helpers.js';

const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'extensions');
const fixture = (name: string) => path.join(FIXTURES, name);
/** The path as a user in the repository root types it. */
const typed = (name: string) => path.relative(REPO_ROOT, fixture(name));

const INPUT = [0.3, -0.7, 1.1, 0.2];
let modelJson: string;
let expected: Float32Array;
let master: InProcessMaster | undefined;

function tinyModel(): tf.LayersModel {
  const input = tf.input({ shape: [4], name: 'x' });
  const h = tf.layers.dense({ units: 8, activation: 'relu', name: 'h' }).apply(input) as tf.SymbolicTensor;
  const out = tf.layers.dense({ units: 3, activation: 'softmax', name: 'out' }).apply(h) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: out, name: 'tiny' });
}

/** The fixture module as the loader imported it (one module instance per URL). */
async function fixtureModule(name: string): Promise<{ contexts: Record<string, unknown>[] }> {
  return (await import(pathToFileURL(fixture(name)).href)) as { contexts: Record<string, unknown>[] };
}

/** What the reverse scheduler places: stage i on the i-th worker id in descending order. */
function expectReversePlacement(status: ClusterStatus): void {
  const ids = status.workers.map((w) => w.id).sort((a, b) => (a < b ? 1 : a > b ? -1 : 0));
  expect(ids.length).toBeGreaterThanOrEqual(2);
  expect(status.stages.map((s) => s.replicas)).toEqual(status.stages.map((_, i) => [ids[i % ids.length]]));
}

async function inferAndCheck(baseUrl: string): Promise<SimpleAnswer> {
  const answer = await postJson<SimpleAnswer & { outputShape: number[] }>(`${baseUrl}/api/infer`, {
    input: INPUT,
  });
  expect(answer.status, JSON.stringify(answer.body)).toBe(200);
  const scores = new Float32Array(3);
  for (const t of answer.body.predictions[0]!.top) scores[t.index] = t.score;
  expect(maxRelativeError(scores, expected, 1e-6)).toBeLessThan(1e-4);
  return answer.body;
}

/** Runs `promtool check metrics` on `text`. */
function promtool(text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile('promtool', ['check', 'metrics'], { timeout: 20_000 }, (error, stdout, stderr) => {
      if (error && (error as NodeJS.ErrnoException).code === 'ENOENT')
        reject(new Error('promtool not found'));
      else resolve(`${stdout}${stderr}`);
    });
    child.stdin?.end(text);
  });
}

async function invalidArgument(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    if (isDinferError(error, DinferErrorCode.INVALID_ARGUMENT)) return error.message;
    throw error;
  }
  throw new Error('expected DINFER_ERR_INVALID_ARGUMENT');
}

beforeAll(async () => {
  await initBackend();
  const model = tinyModel();
  const dir = await tempDir('dinfer-extensions-');
  modelJson = (await saveLayersModel(model, path.join(dir, 'tiny'))).modelJsonPath;
  expected = tf.tidy(() => (model.predict(tf.tensor2d([INPUT])) as tf.Tensor).dataSync() as Float32Array);
  model.dispose();
});

cleanUpAfterEachTest(() => {
  const current = master;
  master = undefined;
  return current;
});

describe('a custom transport and scheduler', () => {
  it('serve a cluster through startMaster, the workers loading the same module', async () => {
    const token = randomToken();
    const transport = await transportFromModule(fixture('custom-transport.js'), {});
    const scheduler = await schedulerFromModule(fixture('reverse-scheduler.js'));
    expect([transport.name, scheduler.name]).toEqual(['custom-tcp', 'reverse']);
    const made = (await fixtureModule('custom-transport.js')).contexts.at(-1)!;
    expect(made).toMatchObject({ maxFrameBytes: 512 * 1024 * 1024 });
    expect(made).not.toHaveProperty('token');

    master = await startMasterInProcess({ model: modelJson, cuts: [2], token, transport, scheduler });
    const workers = await Promise.all(
      ['a', 'b'].map((name) =>
        spawnWorker({ master: master!.clusterAddress, token, transport: typed('custom-transport.js'), name }),
      ),
    );
    await withTimeout(
      master.ready,
      60_000,
      `the cluster; workers said:\n${workers.map((w) => w.output()).join('\n')}`,
    );
    for (const worker of workers) expect(worker.output()).toContain('(custom-tcp)');
    expectReversePlacement(master.coordinator.status());
    const answer = await inferAndCheck(master.httpUrl);
    expect(answer.nodes.map((n) => n.worker)).toEqual(
      master.coordinator.status().stages.map((s) => s.replicas[0]),
    );

    // The master's exposition, with the custom transport reporting into it, lints clean.
    const metrics = await fetch(`${master.httpUrl}/metrics`);
    expect(await promtool(await metrics.text())).toBe('');
  });

  it('serve a cluster through the built CLI, the module paths relative to the working directory', async () => {
    const token = randomToken();
    const dinferMaster = spawnCli('master', [
      'master',
      '--model',
      modelJson,
      '--cuts',
      '2',
      ...LOOPBACK_MASTER_ARGS,
      '--token',
      token,
      '--transport',
      typed('custom-transport.js'),
      '--scheduler',
      typed('reverse-scheduler.js'),
    ]);
    const address = await waitFor('the master to listen', () => {
      const line = /cluster: workers dial (\S+) \(custom-tcp, scheduler reverse\)/.exec(
        dinferMaster.output(),
      );
      return line?.[1] ?? (dinferMaster.hasExited() ? `exited:\n${dinferMaster.output()}` : undefined);
    });
    expect(address).not.toMatch(/^exited/);
    for (const name of ['a', 'b']) {
      await spawnWorker({ master: address, token, transport: typed('custom-transport.js'), name });
    }
    const baseUrl = await waitFor(
      'the cluster to be ready',
      () => /HTTP API\s+(http:\/\/\S+)\/api\/infer/.exec(dinferMaster.output())?.[1],
      60_000,
    );
    const status = await getJson<ClusterStatus>(`${baseUrl}/api/status`);
    expectReversePlacement(status.body);
    const answer = await inferAndCheck(baseUrl);
    expect(answer.nodes.map((n) => n.worker)).toEqual(status.body.stages.map((s) => s.replicas[0]));
  });
});

describe('dinfer up with a custom transport and scheduler', () => {
  it('hands the transport module to every worker process, and the scheduler module to the master', async () => {
    const up = spawnCli('up', [
      'up',
      '--model',
      modelJson,
      '--cuts',
      '2',
      '--workers',
      '2',
      '--http-port',
      '0',
      '--transport',
      typed('custom-transport.js'),
      '--scheduler',
      typed('reverse-scheduler.js'),
      '--cache-dir',
      await tempDir('dinfer-extensions-up-'),
      '--exit-when-ready',
    ]);
    const exit = await withTimeout(up.exited, 60_000, `dinfer up to exit; output:\n${up.output()}`);
    expect(exit, up.output()).toEqual({ code: 0, signal: null });
    for (const worker of ['worker-1', 'worker-2']) {
      expect(up.output()).toMatch(new RegExp(`\\[${worker}\\] joined .* \\(custom-tcp\\)`));
    }
    expect(up.output()).toMatch(/ready: serving model "tiny"/);
  });
});

describe('wrong transports and schedulers', () => {
  const ports = { httpHost: '127.0.0.1', httpPort: 0, clusterHost: '127.0.0.1', clusterPort: 0 };

  it('are refused by startMaster and startLocalCluster, naming what is expected', async () => {
    expect(
      await invalidArgument(startMaster({ ...ports, model: modelJson, transport: 'udp' as never })),
    ).toBe('unknown transport "udp": expected one of tcp, socketio');
    expect(await invalidArgument(startMaster({ ...ports, model: modelJson, transport: {} as never }))).toBe(
      'transport: expected "tcp", "socketio" or a Transport (see isTransport in @dinfer/core), got an object',
    );
    expect(
      await invalidArgument(startMaster({ ...ports, model: modelJson, scheduler: 'fastest' as never })),
    ).toBe('unknown scheduler "fastest": expected one of round-robin, load, capability');
    expect(
      await invalidArgument(startMaster({ ...ports, model: modelJson, scheduler: tcpTransport() as never })),
    ).toMatch(/^scheduler: expected "round-robin", "load", "capability" or a Scheduler .*got an object$/);
    // Worker processes cannot be handed an object: a local cluster takes a module.
    expect(
      await invalidArgument(
        startLocalCluster({ model: modelJson, workers: 1, transport: tcpTransport() as never }),
      ),
    ).toMatch(/expected "tcp", "socketio" or \{ module: "\.\/my-transport\.js" \}, got an object/);
    expect(
      await invalidArgument(
        startLocalCluster({ model: modelJson, workers: 1, transport: { module: 'nope.js' } }),
      ),
    ).toBe(`transport module ${path.resolve('nope.js')} not found`);
  });

  it('name the module and the problem for each broken module', async () => {
    const cases: [string, RegExp][] = [
      ['missing.js', /^transport module .*missing\.js not found$/],
      ['cannot-load.js', /^cannot load the transport module .*cannot-load\.js: .*dinfer-no-such-package/],
      [
        'no-default.js',
        /^the transport module .*no-default\.js has no default export; export a function \(context\) => Transport$/,
      ],
      [
        'not-a-function.js',
        /^the default export of the transport module .*not-a-function\.js is a number, not a function \(context\) => Transport$/,
      ],
      ['throws.js', /^the Transport factory of .*throws\.js failed: no network here$/],
      [
        'not-an-extension.js',
        /^the Transport factory of .*not-an-extension\.js returned an object, not a Transport \(see isTransport in @dinfer\/core\)$/,
      ],
    ];
    for (const [name, message] of cases) {
      expect(await invalidArgument(transportFromModule(fixture(name))), name).toMatch(message);
    }
    // A transport is no scheduler.
    expect(await invalidArgument(schedulerFromModule(fixture('custom-transport.js')))).toMatch(
      /returned an object, not a Scheduler \(see isScheduler in @dinfer\/core\)$/,
    );
    expect(await invalidArgument(schedulerFromModule(fixture('no-default.js')))).toMatch(
      /export a function \(context\) => Scheduler$/,
    );
    // A path relative to the working directory.
    expect(await invalidArgument(transportFromModule('./nope/transport.js', {}, FIXTURES))).toBe(
      `transport module ${path.join(FIXTURES, 'nope', 'transport.js')} not found`,
    );
  });

  it('stop the CLI with exit 1 and the message, or exit 2 for a value that is no name or path', async () => {
    const run = async (...args: string[]) => {
      const err: string[] = [];
      const io: CliIo = { out: () => {}, err: (t) => err.push(t) };
      // --insecure: without a token the commands would stop at that first.
      return { code: await runCli(['node', 'dinfer', ...args, '--insecure'], io), err: err.join('') };
    };
    const missing = await run('master', '--model', modelJson, '--transport', './no/such/transport.js');
    expect(missing.code).toBe(1);
    expect(missing.err).toContain(
      `error: DINFER_ERR_INVALID_ARGUMENT: transport module ${path.resolve('no/such/transport.js')} not found`,
    );
    const notScheduler = await run(
      'master',
      '--model',
      modelJson,
      '--scheduler',
      fixture('not-a-function.js'),
    );
    expect(notScheduler.code).toBe(1);
    expect(notScheduler.err).toMatch(
      /the default export of the scheduler module .* is a number, not a function/,
    );
    const worker = await run('worker', '--master', '127.0.0.1:9', '--transport', fixture('throws.js'));
    expect(worker.code).toBe(1);
    expect(worker.err).toMatch(/the Transport factory of .*throws\.js failed: no network here/);
    const unknown = await run('master', '--model', modelJson, '--transport', 'udp');
    expect(unknown.code).toBe(2);
    expect(unknown.err).toMatch(
      /expected tcp, socketio or the path of a module whose default export makes a Transport/,
    );
  });
});
