/**
 * `pnpm bench:pipeline`: end-to-end throughput and latency of a dinfer pipeline against plain
 * `model.predict` in one process, on the same backend, measured in the same run.
 *
 * This process is the master: it loads ResNet50 (224x224x3), profiles its layers, plans a
 * balanced 2-stage cut, starts core's coordinator on `@dinfer/transport-tcp` and forks two
 * worker processes (`pipeline-worker.js`). Requests enter through the coordinator's
 * programmatic API (`coordinator.infer` with {@link TensorData}), so no JSON is parsed on the
 * measured path; what JSON would cost is measured on its own at the end.
 *
 * Measured, with local and cluster runs interleaved so that load from other processes on a
 * shared machine hits both alike:
 * - throughput: a stream of batch-1 requests at concurrency 8 through the cluster, against
 *   back-to-back `model.predict` + `data()` in this process; ratio per adjacent round pair
 *   (target >= 1.8x on 2 cores: two independent 1-thread wasm processes reach 1.93x), judged
 *   on whole streams (pipeline fill and drain included); the steady-state ratio without them
 *   is printed too;
 * - CPU time per request of the master and of each worker (the workers report theirs over
 *   IPC), and the throughput ratio those CPU costs would give on 2 otherwise idle cores;
 * - latency of one request alone through the cluster against one local predict (target
 *   <= local + 5%);
 * - correctness: the cluster's output against the local model's on the same input;
 * - the JSON path: stringify, parse and flatten of one 224x224x3 input as a nested array.
 *
 * Options: `--requests N` cluster requests per round (default 40), `--local-requests N`
 * (default 20), `--rounds N` (default 3), `--concurrency N` (default 8), `--latency-samples N`
 * (default 10), `--profile-runs N` (default 5). With `DINFER_BENCH_PROFILE_DIR` set, the master
 * and both workers write a V8 CPU profile of each cluster round there (the profiler's own
 * overhead then shows in the figures).
 *
 * @module
 */
import { type ChildProcess, fork } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  analyzeModel,
  type Coordinator,
  createCoordinator,
  describeBackend,
  initBackend,
  type Metrics,
  planCuts,
  profileLayers,
  type TensorData,
} from '@dinfer/core';
import { tcpTransport } from '@dinfer/transport-tcp';
import { Command } from 'commander';
import { loadExampleModel } from '../models/cache.js';
import { makeInputs } from './bench-inputs.js';
import { mean, median } from './bench-stats.js';
import { type CpuProfileWindow, startCpuProfile } from './cpu-profile.js';
import { measureJson } from './json-cost.js';
import { predictOnce } from './local-predict.js';
import type { PipelineWorkerCommand, PipelineWorkerReport } from './pipeline-worker.js';

const THROUGHPUT_TARGET = 1.8;
const LATENCY_TARGET = 1.05;
const MODEL_NAME = 'resnet50';

interface Options {
  readonly requests: number;
  readonly localRequests: number;
  readonly rounds: number;
  readonly concurrency: number;
  readonly latencySamples: number;
  readonly profileRuns: number;
}

/** This process' CPU time (user + system) in ms. */
function processCpuMs(): number {
  const used = process.cpuUsage();
  return (used.user + used.system) / 1000;
}

function loadLine(): string {
  const [one, five, fifteen] = loadavg().map((v) => v.toFixed(2));
  return `load average ${one}, ${five}, ${fifteen} on ${availableParallelism()} cores`;
}

// ---------------------------------------------------------------- the two subjects

async function clusterInfer(coordinator: Coordinator, input: TensorData): Promise<Float32Array> {
  const result = await coordinator.infer(MODEL_NAME, [input]);
  // A stage run on the master (a worker lost) would measure something else: stop instead.
  if (result.degraded) throw new Error('a stage ran degraded on the master: a worker was lost');
  return result.outputs[0]!.data as Float32Array;
}

/** Timing of one {@link stream}. */
interface StreamTiming {
  /** Elapsed ms from the first request sent to the last answer. */
  readonly ms: number;
  /**
   * Answers per second between the `skip`-th answer and the `skip`-th from the end: the
   * steady state of a pipeline, without its fill and drain. `skip` is the concurrency (at
   * most a quarter of the requests).
   */
  readonly steadyPerSecond: number;
}

/** Runs `count` requests with at most `concurrency` in flight. */
async function stream(
  count: number,
  concurrency: number,
  inputs: readonly TensorData[],
  run: (input: TensorData) => Promise<unknown>,
): Promise<StreamTiming> {
  let next = 0;
  const done: number[] = [];
  const start = performance.now();
  const lane = async (): Promise<void> => {
    while (next < count) {
      const i = next++;
      await run(inputs[i % inputs.length]!);
      done.push(performance.now());
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, lane));
  const ms = performance.now() - start;
  const skip = Math.min(concurrency, Math.floor(count / 4));
  const steadyPerSecond =
    skip === 0
      ? (1000 * count) / ms
      : (1000 * (count - 2 * skip)) / (done[count - skip - 1]! - done[skip - 1]!);
  return { ms, steadyPerSecond };
}

// ---------------------------------------------------------------- workers

interface WorkerChild {
  readonly name: string;
  readonly child: ChildProcess;
  readonly backend: string;
  /** The worker process' CPU and event-loop times so far, read over IPC. */
  sample(): Promise<WorkerSample>;
  /** Starts a CPU profile in the worker. */
  profileStart(): void;
  /** Stops it and writes it to `file`. */
  profileStop(file: string): Promise<void>;
}

/** Cumulative times of a worker process, in ms. */
interface WorkerSample {
  /** CPU time, user + system. */
  readonly cpu: number;
  /** Wall time its event loop was busy (computing, or runnable but waiting for a core). */
  readonly active: number;
  /** Wall time its event loop had nothing to do (waiting for input). */
  readonly idle: number;
}

function sampleDiff(a: WorkerSample, b: WorkerSample): WorkerSample {
  return { cpu: b.cpu - a.cpu, active: b.active - a.active, idle: b.idle - a.idle };
}

/**
 * Forks one worker (added to `children` at once, so it is stopped whatever happens next) and
 * resolves once it has joined the master.
 */
function forkWorker(
  name: string,
  env: Record<string, string>,
  children: ChildProcess[],
  timeoutMs: number,
  dead: (error: Error) => void,
): Promise<WorkerChild> {
  const script = path.join(path.dirname(fileURLToPath(import.meta.url)), 'pipeline-worker.js');
  const child = fork(script, [], {
    env: { ...process.env, ...env, DINFER_BENCH_NAME: name },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  children.push(child);
  let sampleWaiter: ((sample: WorkerSample) => void) | undefined;
  let profileWaiter: (() => void) | undefined;
  const send = (command: PipelineWorkerCommand): void => {
    child.send(command);
  };
  return new Promise<WorkerChild>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not join in ${timeoutMs} ms`)), timeoutMs);
    child.on('message', (message: PipelineWorkerReport) => {
      if (message.type === 'ready') {
        clearTimeout(timer);
        resolve({
          name,
          child,
          backend: message.backend,
          sample: () =>
            new Promise<WorkerSample>((done) => {
              sampleWaiter = done;
              send({ type: 'cpu' });
            }),
          profileStart: () => send({ type: 'profile.start' }),
          profileStop: (file) =>
            new Promise<void>((done) => {
              profileWaiter = done;
              send({ type: 'profile.stop', file });
            }),
        });
      } else if (message.type === 'cpu') {
        sampleWaiter?.({
          cpu: message.userMs + message.systemMs,
          active: message.activeMs,
          idle: message.idleMs,
        });
        sampleWaiter = undefined;
      } else if (message.type === 'profiled') {
        profileWaiter?.();
        profileWaiter = undefined;
      } else if (message.type === 'failed') {
        clearTimeout(timer);
        reject(new Error(`${name} failed: ${message.error}`));
      }
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      const error = new Error(`${name} exited (code ${code}, signal ${signal})`);
      reject(error);
      dead(error);
    });
  });
}

async function stopChildren(children: readonly ChildProcess[]): Promise<void> {
  await Promise.all(
    children.map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
          child.once('exit', () => {
            clearTimeout(timer);
            resolve();
          });
          if (child.connected) child.disconnect();
          else child.kill('SIGTERM');
        }),
    ),
  );
}

// ---------------------------------------------------------------- stage metrics

/** Collects the coordinator's per-stage timings (compute, queue, transfer) while enabled. */
class StageTimings implements Metrics {
  enabled = false;
  readonly #values = new Map<string, number[]>();

  increment(): void {}
  set(): void {}
  observe(name: string, labels: Record<string, string>, value: number): void {
    if (!this.enabled || !name.startsWith('dinfer_stage_')) return;
    const key = `${name}|${labels.stage ?? ''}`;
    const list = this.#values.get(key);
    if (list === undefined) this.#values.set(key, [value * 1000]);
    else list.push(value * 1000);
  }

  /** Mean ms of one metric for one stage. */
  meanMs(metric: string, stage: number): number {
    return mean(this.#values.get(`dinfer_stage_${metric}_seconds|${stage}`) ?? []);
  }

  reset(): void {
    this.#values.clear();
  }

  describe(stages: number): string {
    const lines: string[] = [];
    for (let s = 0; s < stages; s++) {
      lines.push(
        `  stage ${s}: call ${this.meanMs('duration', s).toFixed(1)} ms = compute ${this.meanMs('compute', s).toFixed(1)}` +
          ` + queue ${this.meanMs('queue', s).toFixed(1)} + transfer/relay ${this.meanMs('transfer', s).toFixed(1)} (means)`,
      );
    }
    return lines.join('\n');
  }
}

// ---------------------------------------------------------------- main

function positiveInt(value: string): number {
  const n = Number.parseInt(value, 10);
  if (!Number.isInteger(n) || n < 1) throw new Error(`expected a positive integer, got "${value}"`);
  return n;
}

async function main(): Promise<void> {
  const options = new Command('bench:pipeline')
    .option('--requests <n>', 'cluster requests per round', positiveInt, 40)
    .option('--local-requests <n>', 'local predict requests per round', positiveInt, 20)
    .option('--rounds <n>', 'interleaved local/cluster round pairs', positiveInt, 3)
    .option('--concurrency <n>', 'requests in flight through the cluster', positiveInt, 8)
    .option('--latency-samples <n>', 'single-request samples per side', positiveInt, 10)
    .option('--profile-runs <n>', 'layer profiling runs (median)', positiveInt, 5)
    .parse(process.argv)
    .opts<Options>();

  const profileDir = process.env.DINFER_BENCH_PROFILE_DIR
    ? path.resolve(process.env.DINFER_BENCH_PROFILE_DIR)
    : undefined;
  if (profileDir !== undefined) await mkdir(profileDir, { recursive: true });
  console.log(`== dinfer pipeline bench: ResNet50 224x224x3, batch 1 ==`);
  console.log(`machine: ${loadLine()} (at start)`);
  const backend = await initBackend();
  console.log(`master ${describeBackend(backend)}`);
  let t = performance.now();
  const { model } = await loadExampleModel('resnet50');
  const analysis = analyzeModel(model);
  console.log(
    `model: ${analysis.layers.length} layers, loaded in ${((performance.now() - t) / 1000).toFixed(1)} s`,
  );

  t = performance.now();
  const costs = await profileLayers(model, { runs: options.profileRuns, warmup: 1, clock: 'cpu' });
  const plan = planCuts(analysis, { stages: 2, layerCostsMs: costs });
  const cut = plan.cuts[0]!;
  console.log(
    `plan: cut at ${cut} (after ${analysis.layers[cut - 1]!.name}), stages ${plan.stages
      .map((s) => `${s.estimatedMs.toFixed(0)} ms`)
      .join(' / ')} profiled (cpu clock, ${((performance.now() - t) / 1000).toFixed(1)} s)`,
  );

  const token = `bench-${process.pid}-${Date.now()}`;
  const timings = new StageTimings();
  const coordinator = createCoordinator({
    transport: tcpTransport({ token }),
    listen: '127.0.0.1:0',
    token,
    metrics: timings,
  });
  const cacheDir = await mkdtemp(path.join(tmpdir(), 'dinfer-bench-pipeline-'));
  const children: ChildProcess[] = [];
  let failure: Error | undefined;
  try {
    const { address } = await coordinator.start();
    t = performance.now();
    await coordinator.deploy({
      name: MODEL_NAME,
      model,
      cuts: plan.cuts,
      stageMs: plan.stages.map((s) => s.estimatedMs),
    });
    const ready = coordinator.waitUntilReady({ minWorkers: 2, timeoutMs: 300_000 });
    ready.catch(() => {}); // awaited below; a worker failing first must not leave it unhandled
    const workers = await Promise.all(
      ['w0', 'w1'].map((name) =>
        forkWorker(
          name,
          {
            DINFER_BENCH_MASTER: address,
            DINFER_BENCH_TOKEN: token,
            DINFER_BENCH_CACHE: path.join(cacheDir, name),
          },
          children,
          120_000,
          (error) => {
            failure ??= error;
          },
        ),
      ),
    );
    await ready;
    const placement = coordinator
      .status()
      .workers.map((w) => `${w.name}: stage ${w.stages.join(', ') || 'none'}`)
      .join('; ');
    console.log(
      `cluster ready in ${((performance.now() - t) / 1000).toFixed(1)} s (shards shipped, loaded, warmed up): ${placement}`,
    );
    for (const w of workers) console.log(`worker ${w.name} (pid ${w.child.pid}) ${w.backend}`);

    const inputs = makeInputs(8);
    // Warm-up both paths, and check that the cluster computes what the model computes.
    const expected = await predictOnce(model, inputs[0]!);
    await predictOnce(model, inputs[1]!);
    await stream(options.concurrency, options.concurrency, inputs, (x) => clusterInfer(coordinator, x));
    const got = await clusterInfer(coordinator, inputs[0]!);
    let maxDiff = 0;
    let top = [0, 0];
    for (let i = 0; i < expected.length; i++) {
      maxDiff = Math.max(maxDiff, Math.abs(expected[i]! - got[i]!));
      if (expected[i]! > expected[top[0]!]!) top = [i, top[1]!];
      if (got[i]! > got[top[1]!]!) top = [top[0]!, i];
    }
    console.log(
      `correctness: cluster vs local output (1000 classes): max |diff| ${maxDiff.toExponential(2)}, argmax ${top[0]} vs ${top[1]}`,
    );
    if (maxDiff > 1e-4 || top[0] !== top[1]) throw new Error('the cluster output differs from the model');

    // ---- latency: one request alone, samples interleaved one by one.
    const localLat: number[] = [];
    const clusterLat: number[] = [];
    const pairRatios: number[] = [];
    const latencyCpu = { local: 0, master: 0 };
    timings.reset();
    timings.enabled = true;
    const latencyBefore = await Promise.all(workers.map((w) => w.sample()));
    for (let i = 0; i < options.latencySamples; i++) {
      const input = inputs[i % inputs.length]!;
      for (const which of i % 2 === 0 ? ['local', 'cluster'] : ['cluster', 'local']) {
        const cpu0 = processCpuMs();
        const start = performance.now();
        if (which === 'local') await predictOnce(model, input);
        else await clusterInfer(coordinator, input);
        (which === 'local' ? localLat : clusterLat).push(performance.now() - start);
        latencyCpu[which === 'local' ? 'local' : 'master'] += processCpuMs() - cpu0;
      }
      pairRatios.push(clusterLat[i]! / localLat[i]!);
    }
    const latencyAfter = await Promise.all(workers.map((w) => w.sample()));
    timings.enabled = false;
    const latRatio = median(pairRatios);
    console.log(`\n-- latency, one request alone (${options.latencySamples} interleaved pairs, median) --`);
    console.log(
      `local predict ${median(localLat).toFixed(1)} ms, cluster ${median(clusterLat).toFixed(1)} ms: ` +
        `ratio ${latRatio.toFixed(3)} (median of pair ratios; ratio of medians ${(median(clusterLat) / median(localLat)).toFixed(3)})` +
        ` vs target <= ${LATENCY_TARGET.toFixed(2)}: ${latRatio <= LATENCY_TARGET ? 'TARGET MET' : 'TARGET MISSED'}`,
    );
    console.log(timings.describe(2));
    const computes = [0, 1].map((stage) => timings.meanMs('compute', stage));
    const balance = Math.max(...computes) / mean(computes);
    console.log(
      `  balance: slowest stage / mean = ${balance.toFixed(3)} -> pipeline ceiling ${(2 / balance).toFixed(2)}x; ` +
        `stage computes sum to ${((100 * (computes[0]! + computes[1]!)) / median(localLat)).toFixed(1)}% of a local predict`,
    );
    const samples = options.latencySamples;
    const workerLatencyCpu = latencyAfter.map((a, i) => (a.cpu - latencyBefore[i]!.cpu) / samples);
    const clusterLatencyCpu = latencyCpu.master / samples + workerLatencyCpu.reduce((a, b) => a + b, 0);
    console.log(
      `  CPU per request (load-independent): local ${(latencyCpu.local / samples).toFixed(1)} ms, cluster ` +
        `${clusterLatencyCpu.toFixed(1)} ms (master ${(latencyCpu.master / samples).toFixed(1)} + ` +
        `${workers.map((w, i) => `${w.name} ${workerLatencyCpu[i]!.toFixed(1)}`).join(' + ')}): ` +
        `ratio ${(clusterLatencyCpu / (latencyCpu.local / samples)).toFixed(3)}`,
    );

    // ---- throughput: interleaved rounds of local stream and cluster stream.
    console.log(
      `\n-- throughput: ${options.requests} cluster requests at concurrency ${options.concurrency} vs ` +
        `${options.localRequests} back-to-back local predicts, ${options.rounds} interleaved rounds --`,
    );
    console.log(
      '(ratio: whole streams; steady: cluster answers between the first and last `concurrency` ones, ' +
        'without pipeline fill and drain; cpu: CPU ms per request of each process; busy: share of wall ' +
        'time a worker was computing or runnable, the rest it waited for input; cpu/busy: share of a ' +
        'core it got while busy)',
    );
    console.log(
      `${'round'.padEnd(6)}${'local img/s'.padStart(12)}${'cluster img/s'.padStart(14)}${'ratio'.padStart(7)}` +
        `${'steady'.padStart(8)}` +
        `${'local cpu'.padStart(10)}${'master cpu'.padStart(11)}` +
        workers
          .map((w) => `${`${w.name} cpu`.padStart(8)}${'busy'.padStart(6)}${'cpu/busy'.padStart(9)}`)
          .join(''),
    );
    const ratios: number[] = [];
    const steadyRatios: number[] = [];
    const cpu = { local: 0, master: 0 };
    let workerTotals: WorkerSample[] = workers.map(() => ({ cpu: 0, active: 0, idle: 0 }));
    let localCount = 0;
    let clusterCount = 0;
    let localTime = 0;
    let clusterTime = 0;
    timings.reset();
    for (let round = 0; round < options.rounds; round++) {
      let localRate = 0;
      let clusterRate = 0;
      let clusterSteady = 0;
      let localCpu = 0;
      let masterCpu = 0;
      let perWorker: WorkerSample[] = [];
      for (const which of round % 2 === 0 ? ['local', 'cluster'] : ['cluster', 'local']) {
        if (which === 'local') {
          const c0 = processCpuMs();
          const { ms } = await stream(options.localRequests, 1, inputs, (x) => predictOnce(model, x));
          const used = processCpuMs() - c0;
          localRate = (1000 * options.localRequests) / ms;
          localCpu = used / options.localRequests;
          cpu.local += used;
          localCount += options.localRequests;
          localTime += ms;
        } else {
          let profile: CpuProfileWindow | undefined;
          if (profileDir !== undefined) {
            for (const w of workers) w.profileStart();
            profile = await startCpuProfile();
          }
          const before = await Promise.all(workers.map((w) => w.sample()));
          const c0 = processCpuMs();
          timings.enabled = true;
          const { ms, steadyPerSecond } = await stream(options.requests, options.concurrency, inputs, (x) =>
            clusterInfer(coordinator, x),
          );
          clusterSteady = steadyPerSecond;
          timings.enabled = false;
          const used = processCpuMs() - c0;
          if (profileDir !== undefined) {
            await profile?.stop(path.join(profileDir, `master-round${round}.cpuprofile`));
            await Promise.all(
              workers.map((w) => w.profileStop(path.join(profileDir, `${w.name}-round${round}.cpuprofile`))),
            );
          }
          const after = await Promise.all(workers.map((w) => w.sample()));
          perWorker = after.map((a, i) => sampleDiff(before[i]!, a));
          workerTotals = workerTotals.map((total, i) => ({
            cpu: total.cpu + perWorker[i]!.cpu,
            active: total.active + perWorker[i]!.active,
            idle: total.idle + perWorker[i]!.idle,
          }));
          clusterRate = (1000 * options.requests) / ms;
          masterCpu = used / options.requests;
          cpu.master += used;
          clusterCount += options.requests;
          clusterTime += ms;
        }
      }
      const ratio = clusterRate / localRate;
      ratios.push(ratio);
      steadyRatios.push(clusterSteady / localRate);
      console.log(
        `${String(round).padEnd(6)}${localRate.toFixed(2).padStart(12)}${clusterRate.toFixed(2).padStart(14)}` +
          `${ratio.toFixed(2).padStart(7)}${(clusterSteady / localRate).toFixed(2).padStart(8)}${localCpu.toFixed(1).padStart(10)}${masterCpu.toFixed(1).padStart(11)}` +
          perWorker
            .map(
              (w) =>
                `${(w.cpu / options.requests).toFixed(1).padStart(8)}` +
                `${`${((100 * w.active) / (w.active + w.idle)).toFixed(0)}%`.padStart(6)}` +
                `${(w.cpu / w.active).toFixed(2).padStart(9)}`,
            )
            .join(''),
      );
    }
    const localRate = (1000 * localCount) / localTime;
    const clusterRate = (1000 * clusterCount) / clusterTime;
    const ratio = median(ratios);
    console.log(timings.describe(2));
    console.log(
      `local ${localRate.toFixed(2)} img/s, cluster ${clusterRate.toFixed(2)} img/s (all rounds): ` +
        `ratio ${ratio.toFixed(2)}x (median of round ratios; overall ${(clusterRate / localRate).toFixed(2)}x; ` +
        `best round ${Math.max(...ratios).toFixed(2)}x; steady state without fill/drain ${median(steadyRatios).toFixed(2)}x)` +
        ` vs target >= ${THROUGHPUT_TARGET.toFixed(2)}x: ${ratio >= THROUGHPUT_TARGET ? 'TARGET MET' : 'TARGET MISSED'}`,
    );

    // ---- CPU time per request: what the ratio would be on 2 otherwise idle cores.
    const localCpu = cpu.local / localCount;
    const masterCpu = cpu.master / clusterCount;
    const workerCpu = workerTotals.map((w) => w.cpu / clusterCount);
    const totalCpu = masterCpu + workerCpu.reduce((a, b) => a + b, 0);
    const cores = Math.min(2, availableParallelism());
    // The pipeline's period is bounded by the busiest worker (one thread each) and by the
    // total CPU it needs spread over the cores it has.
    const period = Math.max(totalCpu / cores, ...workerCpu);
    console.log(`\n-- CPU time per request (load-independent) --`);
    console.log(
      `local predict ${localCpu.toFixed(1)} ms; cluster: master ${masterCpu.toFixed(2)} ms ` +
        `(${((100 * masterCpu) / totalCpu).toFixed(1)}% of the cluster's), ` +
        `${workers.map((w, i) => `${w.name} ${workerCpu[i]!.toFixed(1)} ms`).join(', ')}, total ${totalCpu.toFixed(1)} ms` +
        ` (${(totalCpu / localCpu).toFixed(3)}x local)`,
    );
    console.log(
      `on ${cores} idle cores: period max(total/${cores}, busiest worker) = ${period.toFixed(1)} ms -> ` +
        `projected ratio ${(localCpu / period).toFixed(2)}x (ideal ${Math.min(cores, localCpu / Math.max(...workerCpu)).toFixed(2)}x with a free master)` +
        ` vs target >= ${THROUGHPUT_TARGET.toFixed(2)}x: ${localCpu / period >= THROUGHPUT_TARGET ? 'met on CPU time' : 'missed on CPU time'}`,
    );

    // ---- the JSON path, measured on its own.
    const json = measureJson(inputs[0]!, 5);
    const localMs = median(localLat);
    console.log(`\n-- JSON path for one 224x224x3 input (not on the measured path above; median of 5) --`);
    console.log(
      `nested array (${(json.bytes / 1e6).toFixed(2)} MB text): client nest + stringify ${json.encodeMs.toFixed(1)} ms, ` +
        `server parse + flatten ${json.decodeMs.toFixed(1)} ms (${((100 * json.decodeMs) / localMs).toFixed(1)}% of a local predict)`,
    );
    console.log(
      `flat array   (${(json.flatBytes / 1e6).toFixed(2)} MB text): client stringify ${json.flatEncodeMs.toFixed(1)} ms, ` +
        `server parse + Float32Array ${json.flatDecodeMs.toFixed(1)} ms (${((100 * json.flatDecodeMs) / localMs).toFixed(1)}% of a local predict)`,
    );
    console.log(`\nmachine: ${loadLine()} (at end)`);
    if (failure) throw failure;
  } finally {
    await coordinator.stop();
    await stopChildren(children);
    await rm(cacheDir, { recursive: true, force: true });
    model.dispose();
  }
}

await main();
