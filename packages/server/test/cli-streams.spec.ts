/**
 * Every `dinfer` command, run as the built executable: its results (URLs, addresses, plans,
 * JSON, tables, the ready banner) on stdout, its progress, warnings, errors and logs on
 * stderr, so `dinfer plan --json m.json > plan.json` and pipes just work.
 */

import path from 'node:path';
import { saveLayersModel } from '@dinfer/core';
import { initBackend } from '@dinfer/core/node';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  type ChildHandle,
  cleanUpAfterEachTest,
  type InProcessMaster,
  LOOPBACK_MASTER_ARGS,
  randomToken,
  runBuiltCli,
  spawnCli,
  spawnWorker,
  startMasterInProcess,
  tempDir,
  waitFor,
  withTimeout,
} from './e2e-helpers.js';

let modelJson: string;
let master: InProcessMaster | undefined;

cleanUpAfterEachTest(() => {
  const current = master;
  master = undefined;
  return current;
});

beforeAll(async () => {
  await initBackend();
  const input = tf.input({ shape: [4], name: 'x' });
  const h = tf.layers.dense({ units: 8, activation: 'relu', name: 'h' }).apply(input) as tf.SymbolicTensor;
  const out = tf.layers.dense({ units: 3, activation: 'softmax', name: 'out' }).apply(h) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: out, name: 'tiny' });
  modelJson = (await saveLayersModel(model, path.join(await tempDir('dinfer-streams-'), 'tiny')))
    .modelJsonPath;
  model.dispose();
});

/** Waits for a line of `child`'s stdout matching `pattern`; fails early when it exits. */
function stdoutLine(child: ChildHandle, pattern: RegExp, timeoutMs = 60_000): Promise<RegExpExecArray> {
  return waitFor(
    `${child.name} to print ${pattern} on stdout`,
    () => {
      for (const line of child.stdout) {
        const match = pattern.exec(line);
        if (match) return match;
      }
      if (child.hasExited()) throw new Error(`${child.name} exited:\n${child.output()}`);
      return undefined;
    },
    timeoutMs,
  );
}

describe('commands that run to their end', () => {
  it('inspect, plan and split: the report or JSON on stdout, the backend and profiling on stderr', async () => {
    const inspect = await runBuiltCli(['inspect', modelJson]);
    expect(inspect.code, inspect.stderr).toBe(0);
    expect(inspect.stdout).toMatch(/^model: tiny$/m);
    expect(inspect.stdout).toMatch(/Dense/);
    expect(inspect.stdout).not.toMatch(/backend:/);
    expect(inspect.stderr).toMatch(/^backend: wasm/m);
    expect(inspect.stderr).not.toMatch(/Dense/);

    const json = await runBuiltCli(['inspect', modelJson, '--json']);
    expect((JSON.parse(json.stdout) as { name: string }).name).toBe('tiny');
    expect(json.stderr).toMatch(/^backend: wasm/m);

    const plan = await runBuiltCli(['plan', modelJson, '--stages', '2', '--json']);
    expect(plan.code, plan.stderr).toBe(0);
    expect((JSON.parse(plan.stdout) as { cuts: number[] }).cuts).toHaveLength(1);
    expect(plan.stderr).toMatch(/^profiled \d+ layers in [\d.]+ s$/m);
    expect(plan.stdout).not.toMatch(/profiled \d+ layers/);

    const out = await tempDir('dinfer-streams-split-');
    const split = await runBuiltCli(['split', modelJson, '--cuts', '2', '--out', out]);
    expect(split.code, split.stderr).toBe(0);
    expect(split.stdout).toContain(`wrote ${path.join(out, 'manifest.json')}`);
    expect(split.stderr).not.toContain('manifest.json');
    const splitJson = await runBuiltCli(['split', modelJson, '--cuts', '2', '--out', out, '--json']);
    expect((JSON.parse(splitJson.stdout) as { stages: unknown[] }).stages).toHaveLength(2);
  });

  it('bench and model: the report and the table on stdout, nothing else', async () => {
    master = await startMasterInProcess({ model: modelJson, cuts: [2], startDegraded: true });
    const bench = await runBuiltCli([
      'bench',
      '--url',
      master.httpUrl,
      '--requests',
      '3',
      '--connections',
      '1',
      '--json',
    ]);
    expect(bench.code, bench.stderr).toBe(0);
    expect((JSON.parse(bench.stdout) as { model: string; requests: number }).model).toBe('tiny');
    expect(bench.stderr).toBe('');
    const list = await runBuiltCli(['model', 'list', '--url', master.httpUrl]);
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout).toMatch(/^MODEL\s+VERSION\s+STATE\s+REASON\ntiny\s+1\s+READY\n$/);
    expect(list.stderr).toBe('');
  });

  it('help and version on stdout; errors and usage on stderr only', async () => {
    const help = await runBuiltCli(['master', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^Usage: dinfer master/);
    expect(help.stderr).toBe('');
    const version = await runBuiltCli(['--version']);
    expect(version.stdout).toMatch(/^\d+\.\d+\.\d+\n$/);
    const missing = await runBuiltCli(['inspect', path.join(path.dirname(modelJson), 'nope.json')]);
    expect(missing.code).toBe(1);
    expect(missing.stdout).toBe('');
    expect(missing.stderr).toMatch(/^error: DINFER_ERR_MODEL_NOT_FOUND: /m);
    const usage = await runBuiltCli(['master', '--bogus']);
    expect(usage.code).toBe(2);
    expect(usage.stdout).toBe('');
    expect(usage.stderr).toMatch(/unknown option '--bogus'[\s\S]*Usage: dinfer master/);
  });
});

describe('commands that serve', () => {
  it('master and worker: addresses, URLs and the banner on stdout; steps, logs and shutdown on stderr', async () => {
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
      '--log-level',
      'info',
    ]);
    const [, address] = await stdoutLine(
      dinferMaster,
      /^cluster: workers dial (\S+) \(tcp, scheduler round-robin\)$/,
    );
    const workers = await Promise.all(
      ['a', 'b'].map((name) => spawnWorker({ master: address!, token, transport: 'tcp', name })),
    );
    await stdoutLine(dinferMaster, /^ready: serving model "tiny"$/);
    for (const worker of workers) {
      await stdoutLine(
        worker,
        new RegExp(`^joined ${address!.replace(/[.[\]]/g, '\\$&')} as \\S+ \\(tcp\\); shard cache `),
      );
      expect(worker.stderr.join('\n')).toMatch(/^backend: /m);
      expect(worker.stdout.join('\n')).not.toMatch(/backend:|"level"/);
    }
    const stdout = dinferMaster.stdout.join('\n');
    expect(stdout).toMatch(/^cuts: \[2\]$/m);
    expect(stdout).toMatch(/^HTTP: http:\/\/127\.0\.0\.1:\d+ \(ready once workers have their stages\)$/m);
    expect(stdout).toMatch(/^ {2}HTTP API {6}http:\/\/127\.0\.0\.1:\d+\/api\/infer$/m);
    // Progress and the structured logs stay off stdout.
    expect(stdout).not.toMatch(/loading |opening |backend:|joined|"level"/);
    const stderr = dinferMaster.stderr.join('\n');
    expect(stderr).toMatch(/^opening .*model\.json$/m);
    expect(stderr).toMatch(/^backend: /m);
    expect(stderr).toMatch(/^worker \S+ \(a\) joined$/m);
    expect(stderr).toMatch(/"level":30/);

    workers[0]!.process.kill('SIGTERM');
    dinferMaster.process.kill('SIGTERM');
    await withTimeout(
      Promise.all([workers[0]!.exited, dinferMaster.exited]),
      20_000,
      'the processes to stop',
    );
    expect(workers[0]!.stderr.join('\n')).toMatch(/^SIGTERM: draining$/m);
    expect(dinferMaster.stderr.join('\n')).toMatch(/^shutting down$/m);
    expect(dinferMaster.stdout.join('\n')).not.toMatch(/shutting down/);
  });

  it('a master without a token warns on stderr, and still prints its banner on stdout', async () => {
    const degraded = spawnCli('master', [
      'master',
      '--model',
      modelJson,
      '--cuts',
      '2',
      '--start-degraded',
      // Without a token a master runs only when told so.
      '--insecure',
      ...LOOPBACK_MASTER_ARGS,
    ]);
    await stdoutLine(degraded, /^ready: serving model "tiny"$/);
    expect(degraded.stderr.join('\n')).toMatch(/^warning: no cluster token/m);
    expect(degraded.stdout.join('\n')).not.toMatch(/warning/);
  });

  it('up: the cuts and the banner on stdout, the workers and the steps on stderr', async () => {
    const up = spawnCli('up', [
      'up',
      '--model',
      modelJson,
      '--cuts',
      '2',
      '--workers',
      '1',
      '--http-port',
      '0',
      '--cache-dir',
      await tempDir('dinfer-streams-up-'),
      '--exit-when-ready',
    ]);
    const exit = await withTimeout(up.exited, 60_000, `dinfer up to exit:\n${up.output()}`);
    expect(exit, up.output()).toEqual({ code: 0, signal: null });
    const stdout = up.stdout.join('\n');
    expect(stdout).toMatch(/^cuts: \[2\]$/m);
    expect(stdout).toMatch(/^ready: serving model "tiny"$/m);
    expect(stdout).not.toMatch(/worker-1|starting a master|backend:/);
    const stderr = up.stderr.join('\n');
    expect(stderr).toMatch(/^starting a master and 1 worker process\(es\) for /m);
    expect(stderr).toMatch(/^\[worker-1\] joined /m);
    expect(stderr).not.toMatch(/ready: serving/);
  });
});
