/**
 * `pnpm bench:bigmodel`: a model no single process can hold, served end to end.
 *
 * 1. Generates a dense residual tower (`big-dense.ts`, default 4096 wide, 40 blocks, 5.0 GiB
 *    of float32 weights) directly on disk with seeded weights, a chunk at a time, after
 *    checking the free disk space (the model once, the workers' shard caches once more).
 * 2. Computes the reference answers stage by stage in separate processes
 *    (`bigmodel-reference.ts`), each holding only its own blocks' weights, with plain TF.js
 *    ops on the weights read by their place in the shard files.
 * 3. Starts `dinfer master --model <dir>/model.json --stages auto` (its own budget, 1 GiB, too
 *    small for any stage) and 3-4 `dinfer worker` processes (wasm, each with a `--max-memory`
 *    budget below the model's size: 4 GiB, the wasm default), waits until the master has
 *    planned the model for them, shipped the stages and the workers loaded them.
 * 4. Sends requests over HTTP (KServe v2 JSON), one at a time and then a concurrent stream, and
 *    checks every answer against the reference.
 *
 * Prints the master's and each worker's peak RSS against its budget, the reference
 * processes' peak RSS, the ship time and the per-request latency; exits 1 when an answer
 * differs, a process went over its budget, or anything failed.
 *
 * Options: `--width`, `--blocks`, `--classes`, `--workers` (default 4), `--worker-memory`
 * (default 4GiB), `--master-memory` (default 1GiB), `--requests` (default 16), `--dir` (default
 * `<repo>/.cache/bigmodel`), `--keep-model` (keep the generated artifacts for the next run).
 *
 * @module
 */
import { type ChildProcess, fork, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, statfs } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { seededRandom } from '@dinfer/core/models';
import { Command, InvalidArgumentError } from 'commander';
import { type BigDenseLayout, type BigDenseSpec, writeBigDenseModel } from '../models/big-dense.js';
import type { ReferenceReply, ReferenceRequest } from './bigmodel-reference.js';
import { dinferBin, freePort } from './dinfer-cli.js';
import { peakRssBytes } from './peak-rss.js';

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
const TOKEN = 'bench-bigmodel';
const MODEL = 'bigdense';
/** Relative tolerance of an answer against the reference (float32, other summation orders). */
const TOLERANCE = 1e-4;

interface Options {
  readonly width: number;
  readonly blocks: number;
  readonly classes: number;
  readonly workers: number;
  readonly workerMemory: number;
  readonly masterMemory: number;
  readonly requests: number;
  readonly dir: string;
  readonly keepModel: boolean;
}

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 1)
    throw new InvalidArgumentError(`expected a positive integer, got "${value}"`);
  return n;
}

function bytes(value: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*(GiB|MiB|KiB|B)?$/i.exec(value.trim());
  if (!match) throw new InvalidArgumentError(`expected a size like 2GiB or 512MiB, got "${value}"`);
  const unit = { gib: GiB, mib: MiB, kib: 1024, b: 1 }[(match[2] ?? 'b').toLowerCase()]!;
  return Math.floor(Number(match[1]) * unit);
}

const gib = (n: number) => `${(n / GiB).toFixed(2)} GiB`;

function repositoryRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'pnpm-workspace.yaml'))) {
    const parent = path.dirname(dir);
    if (parent === dir) return process.cwd();
    dir = parent;
  }
  return dir;
}

/** Seeded inputs in [-1, 1): one row per request. */
function requestInputs(count: number, width: number): Float32Array[] {
  const random = seededRandom(20250601);
  return Array.from({ length: count }, () => random.fillUniform(new Float32Array(width), -1, 1));
}

// ---------------------------------------------------------------- reference

interface ReferenceResult {
  readonly outputs: Float32Array[];
  readonly peaks: number[];
  readonly ms: number;
}

function runReferenceStage(request: ReferenceRequest): Promise<Extract<ReferenceReply, { type: 'done' }>> {
  const script = path.join(path.dirname(fileURLToPath(import.meta.url)), 'bigmodel-reference.js');
  const child = fork(script, [], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    serialization: 'advanced',
  });
  return new Promise((resolve, reject) => {
    child.once('message', (message: ReferenceReply) => {
      if (message.type === 'done') resolve(message);
      else reject(new Error(`reference blocks [${request.from}, ${request.to}): ${message.error}`));
    });
    child.once('exit', (code) => reject(new Error(`reference process exited with ${code}`)));
    child.send(request);
  });
}

/** The reference answers, computed in processes of about `groupBytes` of weights each, one after another. */
async function reference(
  dir: string,
  layout: BigDenseLayout,
  inputs: Float32Array[],
): Promise<ReferenceResult> {
  const { width, blocks, classes } = layout.spec;
  const blockBytes = 2 * width * width * 4;
  const perProcess = Math.max(1, Math.floor((1.25 * GiB) / blockBytes));
  let data: Float32Array = new Float32Array(inputs.length * width);
  inputs.forEach((row, i) => {
    data.set(row, i * width);
  });
  let shape = [inputs.length, width];
  const peaks: number[] = [];
  const started = performance.now();
  for (let from = 0; from < blocks; from += perProcess) {
    const to = Math.min(blocks, from + perProcess);
    const answer = await runReferenceStage({ dir, from, to, head: to === blocks, shape, data });
    peaks.push(answer.peakRssBytes);
    data = answer.data;
    shape = answer.shape;
  }
  const outputs = inputs.map((_, i) => data.subarray(i * classes, (i + 1) * classes));
  return { outputs, peaks, ms: performance.now() - started };
}

// ---------------------------------------------------------------- cluster

interface Process {
  readonly name: string;
  readonly child: ChildProcess;
  readonly lines: string[];
  /** When each line arrived, in `performance.now()` ms. */
  readonly times: number[];
}

const started: Process[] = [];

function launch(name: string, args: string[], echo: (line: string) => boolean): Process {
  const child = spawn(process.execPath, [dinferBin(), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  const times: number[] = [];
  const take = (chunk: Buffer) => {
    for (const line of chunk.toString('utf8').split('\n')) {
      if (line.trim() === '') continue;
      lines.push(line);
      times.push(performance.now());
      if (echo(line)) console.log(`  [${name}] ${line}`);
    }
  };
  child.stdout!.on('data', take);
  child.stderr!.on('data', take);
  const handle = { name, child, lines, times };
  started.push(handle);
  return handle;
}

/** Stops the master first (so that it re-places nothing), then the workers. */
async function stopAll(): Promise<void> {
  const [first, ...rest] = started.splice(0);
  for (const group of [first === undefined ? [] : [first], rest]) await stopGroup(group);
}

async function stopGroup(processes: readonly Process[]): Promise<void> {
  await Promise.all(
    processes.map(
      ({ child }) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
          child.once('exit', () => {
            clearTimeout(timer);
            resolve();
          });
          child.kill('SIGTERM');
        }),
    ),
  );
}

async function waitReady(url: string, master: Process, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (master.child.exitCode !== null) {
      throw new Error(`the master exited (${master.child.exitCode}):\n${master.lines.slice(-15).join('\n')}`);
    }
    try {
      const response = await fetch(`${url}/v2/health/ready`);
      if (response.ok) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline)
      throw new Error(`not ready after ${timeoutMs} ms:\n${master.lines.slice(-15).join('\n')}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

async function infer(url: string, row: Float32Array): Promise<{ data: number[]; ms: number }> {
  const t0 = performance.now();
  const response = await fetch(`${url}/v2/models/${MODEL}/infer`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      inputs: [{ name: 'x', shape: [1, row.length], datatype: 'FP32', data: Array.from(row) }],
    }),
  });
  const body = (await response.json()) as { outputs?: { data: number[] }[]; error?: string };
  if (!response.ok || body.outputs === undefined)
    throw new Error(`HTTP ${response.status}: ${body.error ?? 'no outputs'}`);
  return { data: body.outputs[0]!.data, ms: performance.now() - t0 };
}

function worstError(got: readonly number[], want: Float32Array): number {
  let worst = 0;
  for (let k = 0; k < want.length; k++)
    worst = Math.max(worst, Math.abs(got[k]! - want[k]!) / Math.max(1e-6, Math.abs(want[k]!)));
  return got.length === want.length ? worst : Number.POSITIVE_INFINITY;
}

function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

// ---------------------------------------------------------------- main

async function main(options: Options): Promise<boolean> {
  const spec: BigDenseSpec = {
    width: options.width,
    blocks: options.blocks,
    classes: options.classes,
    seed: 7,
  };
  const modelBytes =
    (options.blocks * 2 * (options.width * options.width + options.width) +
      options.width * options.classes +
      options.classes) *
    4;
  console.log(
    `bench:bigmodel: ${gib(modelBytes)} of float32 weights (${options.blocks} blocks of ${options.width}x${options.width}), ${options.workers} workers of ${gib(options.workerMemory)}, master ${gib(options.masterMemory)}`,
  );
  await mkdir(path.dirname(options.dir), { recursive: true });
  const disk = await statfs(path.dirname(options.dir));
  const free = disk.bavail * disk.bsize;
  const needed = (existsSync(path.join(options.dir, 'model.json')) ? 0 : modelBytes) + modelBytes * 1.1;
  console.log(
    `free disk ${gib(free)}; this run needs about ${gib(needed)} (the model, and the workers' shard caches)`,
  );
  if (free < needed) throw new Error(`not enough free disk: ${gib(free)} free, about ${gib(needed)} needed`);

  let t0 = performance.now();
  let shown = -1;
  const { layout, generated } = await writeBigDenseModel(options.dir, spec, (written, total) => {
    const tenth = Math.floor((10 * written) / total);
    if (tenth === shown) return;
    shown = tenth;
    process.stdout.write(`\r  generating ${gib(written)} / ${gib(total)}`);
  });
  console.log(
    generated
      ? `\rgenerated ${gib(layout.weightBytes)} in ${((performance.now() - t0) / 1000).toFixed(1)} s (${layout.shards.length} shards), peak RSS of this process ${gib(await peakRssBytes())}`
      : `reusing the artifacts in ${options.dir}`,
  );

  const inputs = requestInputs(options.requests, options.width);
  const ref = await reference(options.dir, layout, inputs);
  console.log(
    `reference: ${ref.peaks.length} processes, one after another, in ${(ref.ms / 1000).toFixed(1)} s; peak RSS ${ref.peaks.map(gib).join(', ')}`,
  );

  const [httpPort, clusterPort] = [await freePort(), await freePort()];
  const url = `http://127.0.0.1:${httpPort}`;
  const fromMaster = (line: string) => /planned .*cuts|error|ready:|refus|infeasib|failed/i.test(line);
  const fromWorker = (line: string) => /"level":(50|60)|^error/.test(line);
  t0 = performance.now();
  const master = launch(
    'master',
    [
      'master',
      '--model',
      path.join(options.dir, 'model.json'),
      '--name',
      MODEL,
      '--stages',
      'auto',
      '--min-workers',
      String(options.workers),
      '--max-memory',
      String(options.masterMemory),
      '--scheduler',
      'capability',
      '--backend',
      'wasm',
      '--token',
      TOKEN,
      '--http-host',
      '127.0.0.1',
      '--http-port',
      String(httpPort),
      '--cluster-host',
      '127.0.0.1',
      '--cluster-port',
      String(clusterPort),
      '--max-batch-size',
      '1',
      '--no-cache',
      '--request-timeout',
      '600000',
    ],
    fromMaster,
  );
  const caches = await mkdtemp(path.join(tmpdir(), 'dinfer-bigmodel-'));
  const workers = Array.from({ length: options.workers }, (_, i) =>
    launch(
      `w${i}`,
      [
        'worker',
        '--master',
        `127.0.0.1:${clusterPort}`,
        '--token',
        TOKEN,
        '--backend',
        'wasm',
        '--name',
        `w${i}`,
        '--max-memory',
        String(options.workerMemory),
        '--cache-dir',
        path.join(caches, `w${i}`),
      ],
      fromWorker,
    ),
  );
  try {
    await waitReady(url, master, 30 * 60_000);
    const readyAt = performance.now();
    const readyS = (readyAt - t0) / 1000;
    const plannedLine = master.lines.findIndex((l) => /planned .*cuts/.test(l));
    const plannedAt = master.times[plannedLine] ?? t0;
    const joinedLine = master.lines.findLastIndex((l) => / joined$/.test(l));
    const joinedAt = master.times[joinedLine] ?? t0;
    console.log(
      `ready ${readyS.toFixed(1)} s after the master started: ${((joinedAt - t0) / 1000).toFixed(1)} s to open, profile and see the workers join, ` +
        `${((plannedAt - joinedAt) / 1000).toFixed(1)} s to plan and hash, ${((readyAt - plannedAt) / 1000).toFixed(1)} s to ship and load`,
    );
    console.log(`  ${master.lines[plannedLine]?.trim() ?? ''}`);
    for (const line of master.lines.filter((l) => / loaded on /.test(l))) console.log(`  ${line.trim()}`);

    const latencies: number[] = [];
    let worst = 0;
    for (const [i, row] of inputs.entries()) {
      const answer = await infer(url, row);
      latencies.push(answer.ms);
      worst = Math.max(worst, worstError(answer.data, ref.outputs[i]!));
    }
    const streamStart = performance.now();
    const concurrent = await Promise.all(inputs.map((row) => infer(url, row)));
    const streamS = (performance.now() - streamStart) / 1000;
    concurrent.forEach((answer, i) => {
      worst = Math.max(worst, worstError(answer.data, ref.outputs[i]!));
    });

    const masterPeak = await peakRssBytes(master.child.pid!);
    const workerPeaks = await Promise.all(workers.map((w) => peakRssBytes(w.child.pid!)));
    const overBudget = [
      ...(masterPeak > options.masterMemory ? ['master'] : []),
      ...workers.filter((_, i) => workerPeaks[i]! > options.workerMemory).map((w) => w.name),
    ];
    console.log('');
    console.log(`master peak RSS   ${gib(masterPeak)} (budget ${gib(options.masterMemory)})`);
    workers.forEach((w, i) => {
      console.log(`${w.name} peak RSS       ${gib(workerPeaks[i]!)} (budget ${gib(options.workerMemory)})`);
    });
    console.log(
      `ship time         ${((readyAt - plannedAt) / 1000).toFixed(1)} s to ship and load ${gib(layout.weightBytes)} (${readyS.toFixed(1)} s from the master's start to ready)`,
    );
    console.log(
      `latency           p50 ${percentile(latencies, 0.5).toFixed(1)} ms, p95 ${percentile(latencies, 0.95).toFixed(1)} ms, max ${Math.max(...latencies).toFixed(1)} ms (${latencies.length} requests, one at a time)`,
    );
    console.log(
      `stream            ${inputs.length} concurrent requests in ${streamS.toFixed(2)} s (${(inputs.length / streamS).toFixed(2)} req/s)`,
    );
    console.log(
      `answers           worst relative error ${worst.toExponential(2)} against the reference (tolerance ${TOLERANCE})`,
    );
    const ok = worst <= TOLERANCE && overBudget.length === 0;
    if (overBudget.length > 0) console.log(`OVER BUDGET: ${overBudget.join(', ')}`);
    console.log(ok ? 'PASS' : 'FAIL');
    return ok;
  } finally {
    await stopAll();
    await rm(caches, { recursive: true, force: true });
    if (!options.keepModel) await rm(options.dir, { recursive: true, force: true });
  }
}

const program = new Command('bench:bigmodel')
  .option('--width <n>', 'width of the tower', positiveInt, 4096)
  .option('--blocks <n>', 'residual blocks (two width x width Dense each)', positiveInt, 40)
  .option('--classes <n>', 'outputs of the head', positiveInt, 1000)
  .option('--workers <n>', 'worker processes', positiveInt, 4)
  .option(
    '--worker-memory <size>',
    "each worker's --max-memory (4GiB: a wasm worker's default)",
    bytes,
    4 * GiB,
  )
  .option('--master-memory <size>', "the master's --max-memory", bytes, GiB)
  .option('--requests <n>', 'requests of each kind', positiveInt, 16)
  .option('--dir <path>', 'where the model is generated', path.join(repositoryRoot(), '.cache', 'bigmodel'))
  .option('--keep-model', 'keep the generated artifacts for the next run', false)
  .action(async (options: Options) => {
    const ok = await main(options);
    process.exitCode = ok ? 0 : 1;
  });

program.parseAsync(process.argv).catch(async (error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  await stopAll();
  process.exitCode = 1;
});
