/**
 * `pnpm bench:pipeline`: throughput and latency of a 2-stage dinfer pipeline of ResNet50
 * (224x224x3, batch 1) against what this machine does without it, all measured in the same
 * interleaved rounds so that load from other processes hits every subject alike.
 *
 * Subjects, each round in a rotating order:
 * - local: back-to-back `model.predict` + `data()` in this process;
 * - ceiling: two plain predict processes (`predict-process.js`) running at once, what the
 *   machine gives two independent processes (a 2-stage pipeline can at best match it);
 * - cluster: a stream of requests at concurrency 8 through core's coordinator in this process
 *   (`coordinator.infer`, no HTTP), on `@dinfer/transport-tcp`, with two worker processes
 *   (`pipeline-worker.js`);
 * - HTTP: the same stream as binary KServe v2 requests to the reference master (`dinfer
 *   master --no-cache`, a child process of the built server CLI) with two more workers.
 *
 * Printed: per round and as median (min-max) over rounds, pipeline/local, pipeline/ceiling
 * and ceiling/local for both cluster paths; the latency of one request alone against one
 * local predict; CPU time per request of every process (load-independent: wasm computes on
 * the calling thread), the master's share through HTTP, and the throughput those CPU times
 * would give on idle cores; each worker's busy share (the rest it waited for input); stage
 * timings. Correctness: both cluster paths' output against the local model's.
 *
 * Options: `--requests N` cluster and HTTP requests per round (default 40), `--local-requests
 * N` local predicts per round, and per process for the ceiling (default 20), `--rounds N`
 * (default 3), `--concurrency N` (default 8), `--latency-samples N` per subject per round
 * (default 5), `--profile-runs N` (default 5). With `DINFER_BENCH_PROFILE_DIR` set, this process
 * and the coordinator's workers write a V8 CPU profile of each cluster round there, and the
 * HTTP master's workers one of each HTTP round (the profiler's own overhead then shows in the
 * figures), and the HTTP master one of its whole life (`http-master.cpuprofile`).
 *
 * @module
 */

import type { ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  analyzeModel,
  createCoordinator,
  describeBackend,
  type Metrics,
  planCuts,
  profileLayers,
  type TensorData,
} from '@dinfer/core';
import { loadExampleModel } from '@dinfer/core/models';
import { initBackend } from '@dinfer/core/node';
import { tcpTransport } from '@dinfer/transport-tcp';
import { Command } from 'commander';
import {
  type BenchChild,
  forkBenchChild,
  type ProcessTimes,
  processCpuMs,
  stopBenchChildren,
  timesBetween,
} from './bench-child.js';
import { makeInputs } from './bench-inputs.js';
import { mean, median, medianSpread } from './bench-stats.js';
import { type CliMaster, type MetricSamples, startCliMaster } from './cli-master.js';
import { startCpuProfile } from './cpu-profile.js';
import { measureJson } from './json-cost.js';
import { type KServeSignature, kserveBinaryInfer, kserveSignature } from './kserve-binary-client.js';
import { predictOnce } from './local-predict.js';
import type { PipelineWorkerCommand, PipelineWorkerReport } from './pipeline-worker.js';
import type { PredictProcessCommand, PredictProcessReport } from './predict-process.js';

const CEILING_TARGET = 0.92;
const LOCAL_TARGET = 1.8;
/** pipeline/local is judged only in rounds where two plain processes reach this. */
const LOCAL_TARGET_CEILING = 1.95;
const LATENCY_TARGET = 1.05;
const HTTP_LATENCY_TARGET = 1.1;
const MODEL_NAME = 'resnet50';

interface Options {
  readonly requests: number;
  readonly localRequests: number;
  readonly rounds: number;
  readonly concurrency: number;
  readonly latencySamples: number;
  readonly profileRuns: number;
  readonly masterFlags: readonly string[];
}

type Worker = BenchChild<PipelineWorkerCommand, PipelineWorkerReport>;
type PredictProcess = BenchChild<PredictProcessCommand, PredictProcessReport>;

function loadLine(): string {
  const [one, five, fifteen] = loadavg().map((v) => v.toFixed(2));
  return `load average ${one}, ${five}, ${fifteen} on ${availableParallelism()} cores`;
}

function here(file: string): string {
  return path.join(path.dirname(fileURLToPath(import.meta.url)), file);
}

// ---------------------------------------------------------------- streams

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

// ---------------------------------------------------------------- stage metrics

/** Collects the in-process coordinator's per-stage timings (compute, queue, transfer) while enabled. */
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
}

/** Mean ms of a stage histogram between two scrapes of the HTTP master. */
function scrapedMeanMs(before: MetricSamples, after: MetricSamples, metric: string, stage: number): number {
  const key = (part: string) =>
    `dinfer_stage_${metric}_seconds_${part}{model="${MODEL_NAME}",stage="${stage}"}`;
  const count = (after.get(key('count')) ?? 0) - (before.get(key('count')) ?? 0);
  const sum = (after.get(key('sum')) ?? 0) - (before.get(key('sum')) ?? 0);
  return count === 0 ? Number.NaN : (1000 * sum) / count;
}

/** Difference of one sample between two scrapes. */
function scrapedDelta(before: MetricSamples, after: MetricSamples, sample: string): number {
  return (after.get(sample) ?? 0) - (before.get(sample) ?? 0);
}

type StageMean = (metric: string, stage: number) => number;

function describeStages(mean: StageMean): string {
  return [0, 1]
    .map(
      (s) =>
        `  stage ${s}: call ${mean('duration', s).toFixed(1)} ms = compute ${mean('compute', s).toFixed(1)}` +
        ` + queue ${mean('queue', s).toFixed(1)} + transfer/relay ${mean('transfer', s).toFixed(1)} (means)`,
    )
    .join('\n');
}

// ---------------------------------------------------------------- cluster processes

async function forkWorkers(
  names: readonly string[],
  master: string,
  token: string,
  cacheDir: string,
  children: ChildProcess[],
  dead: (error: Error) => void,
): Promise<Worker[]> {
  return Promise.all(
    names.map(async (name) => {
      const { child, ready } = await forkBenchChild<PipelineWorkerCommand, PipelineWorkerReport>(
        here('pipeline-worker.js'),
        {
          name,
          env: {
            DINFER_BENCH_MASTER: master,
            DINFER_BENCH_TOKEN: token,
            DINFER_BENCH_CACHE: path.join(cacheDir, name),
          },
          children,
          readyTimeoutMs: 120_000,
          onExit: dead,
        },
      );
      console.log(`worker ${name} (pid ${ready.pid}) joined ${master}, ${ready.backend}`);
      return child;
    }),
  );
}

async function workerTimes(workers: readonly Worker[]): Promise<ProcessTimes[]> {
  return Promise.all(workers.map(async (w) => (await w.ask({ type: 'times' }, 'times')).times));
}

function profileStart(workers: readonly Worker[]): void {
  for (const w of workers) w.tell({ type: 'profile.start' });
}

async function profileStop(workers: readonly Worker[], dir: string, round: number): Promise<void> {
  await Promise.all(
    workers.map((w) =>
      w.ask({ type: 'profile.stop', file: path.join(dir, `${w.name}-round${round}.cpuprofile`) }, 'profiled'),
    ),
  );
}

/** Largest |a - b| and whether both argmaxes agree. */
function compare(expected: Float32Array, got: Float32Array): { maxDiff: number; sameTop: boolean } {
  let maxDiff = 0;
  let topE = 0;
  let topG = 0;
  for (let i = 0; i < expected.length; i++) {
    maxDiff = Math.max(maxDiff, Math.abs(expected[i]! - got[i]!));
    if (expected[i]! > expected[topE]!) topE = i;
    if (got[i]! > got[topG]!) topG = i;
  }
  return { maxDiff, sameTop: topE === topG && expected.length === got.length };
}

// ---------------------------------------------------------------- rounds

/** What one throughput round measured. */
interface Round {
  readonly local: number;
  readonly ceiling: number;
  readonly cluster: number;
  readonly clusterSteady: number;
  readonly http: number;
  readonly httpSteady: number;
  /** CPU ms per request of each process, by name (local, p0/p1, master, c0/c1, http master, h0/h1). */
  readonly cpu: Readonly<Record<string, number>>;
  /** Share of wall time each worker's event loop was busy, by name. */
  readonly busy: Readonly<Record<string, number>>;
  /** Mean rows per batch the HTTP master's batcher formed. */
  readonly httpBatchRows: number;
}

function positiveInt(value: string): number {
  const n = Number.parseInt(value, 10);
  if (!Number.isInteger(n) || n < 1) throw new Error(`expected a positive integer, got "${value}"`);
  return n;
}

function verdict(ok: boolean): string {
  return ok ? 'TARGET MET' : 'TARGET MISSED';
}

async function main(): Promise<void> {
  const options = new Command('bench:pipeline')
    .option('--requests <n>', 'cluster and HTTP requests per round', positiveInt, 40)
    .option('--local-requests <n>', 'local predicts per round (per process for the ceiling)', positiveInt, 20)
    .option('--rounds <n>', 'interleaved rounds', positiveInt, 3)
    .option('--concurrency <n>', 'requests in flight through the cluster', positiveInt, 8)
    .option('--latency-samples <n>', 'single-request samples per subject per round', positiveInt, 5)
    .option('--profile-runs <n>', 'layer profiling runs (median)', positiveInt, 5)
    .option(
      '--master-flags <flags>',
      'extra flags of the HTTP path\'s `dinfer master`, e.g. "--max-batch-size 1"',
      (text: string) => text.split(/\s+/).filter(Boolean),
      [] as string[],
    )
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
  const { model, modelJsonPath } = await loadExampleModel('resnet50');
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
    transport: tcpTransport(),
    listen: '127.0.0.1:0',
    token,
    metrics: timings,
  });
  const cacheDir = await mkdtemp(path.join(tmpdir(), 'dinfer-bench-pipeline-'));
  const children: ChildProcess[] = [];
  let failure: Error | undefined;
  let stopping = false;
  const dead = (error: Error) => {
    if (stopping) return;
    console.error(`bench: ${error.message}`);
    failure ??= error;
  };
  let master: CliMaster | undefined;
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
    master = await startCliMaster({
      model: modelJsonPath,
      name: MODEL_NAME,
      cuts: plan.cuts,
      token,
      flags: ['--no-cache', ...options.masterFlags],
      // Its whole life, written when it stops (it is driven over HTTP only).
      nodeArgs:
        profileDir === undefined
          ? []
          : ['--cpu-prof', `--cpu-prof-dir=${profileDir}`, '--cpu-prof-name=http-master.cpuprofile'],
    });
    const http = master;
    console.log(`HTTP master: dinfer master --no-cache at ${http.url} (pid ${http.process.pid})`);
    const [clusterWorkers, httpWorkers, predictors] = await Promise.all([
      forkWorkers(['c0', 'c1'], address, token, cacheDir, children, dead),
      forkWorkers(['h0', 'h1'], http.clusterAddress, token, cacheDir, children, dead),
      Promise.all(
        ['p0', 'p1'].map(async (name) => {
          const forked = await forkBenchChild<PredictProcessCommand, PredictProcessReport>(
            here('predict-process.js'),
            { name, env: {}, children, readyTimeoutMs: 120_000, onExit: dead },
          );
          return forked.child as PredictProcess;
        }),
      ),
    ]);
    await Promise.all([ready, http.waitReady(300_000)]);
    console.log(
      `clusters ready in ${((performance.now() - t) / 1000).toFixed(1)} s (shards shipped, loaded, warmed up): ` +
        coordinator
          .status()
          .workers.map((w) => `${w.name}: stage ${w.stages.join(', ') || 'none'}`)
          .join('; '),
    );
    const signature: KServeSignature = await kserveSignature(http.url, MODEL_NAME);

    const inputs = makeInputs(8);
    const clusterInfer = async (input: TensorData): Promise<Float32Array> => {
      const result = await coordinator.infer(MODEL_NAME, [input]);
      // A stage run on the master (a worker lost) would measure something else: stop instead.
      if (result.degraded) throw new Error('a stage ran degraded on the master: a worker was lost');
      return result.outputs[0]!.data as Float32Array;
    };
    const httpInfer = (input: TensorData) => kserveBinaryInfer(http.url, signature, input);
    const localInfer = (input: TensorData) => predictOnce(model, input);

    // Warm-up every path, and check that both clusters compute what the model computes.
    const expected = await localInfer(inputs[0]!);
    await localInfer(inputs[1]!);
    await stream(options.concurrency, options.concurrency, inputs, clusterInfer);
    await stream(options.concurrency, options.concurrency, inputs, httpInfer);
    for (const [label, got] of [
      ['cluster', await clusterInfer(inputs[0]!)],
      ['HTTP', await httpInfer(inputs[0]!)],
    ] as const) {
      const { maxDiff, sameTop } = compare(expected, got);
      console.log(
        `correctness: ${label} vs local output (1000 classes): max |diff| ${maxDiff.toExponential(2)}, same argmax: ${sameTop}`,
      );
      if (maxDiff > 1e-4 || !sameTop) throw new Error(`the ${label} output differs from the model`);
    }

    // ---- latency: one request alone, subjects interleaved sample by sample.
    console.log(
      `\n-- latency, one request alone (${options.latencySamples} samples per subject per round, ${options.rounds} rounds) --`,
    );
    const latency = { cluster: [] as number[], http: [] as number[], localMs: [] as number[] };
    const latencyCpu = { local: 0, master: 0, workers: [0, 0], samples: 0 };
    timings.reset();
    timings.enabled = true;
    const latencyScrape = await http.scrape();
    for (let round = 0; round < options.rounds; round++) {
      const ms = { local: [] as number[], cluster: [] as number[], http: [] as number[] };
      const before = await workerTimes(clusterWorkers);
      for (let i = 0; i < options.latencySamples; i++) {
        const input = inputs[i % inputs.length]!;
        const order = (['local', 'cluster', 'http'] as const).map((_, k, all) => all[(k + i + round) % 3]!);
        for (const which of order) {
          const cpu0 = processCpuMs();
          const start = performance.now();
          await (which === 'local' ? localInfer : which === 'cluster' ? clusterInfer : httpInfer)(input);
          ms[which].push(performance.now() - start);
          if (which === 'local') latencyCpu.local += processCpuMs() - cpu0;
          if (which === 'cluster') latencyCpu.master += processCpuMs() - cpu0;
        }
      }
      const after = await workerTimes(clusterWorkers);
      after.forEach((a, w) => {
        latencyCpu.workers[w]! += a.cpu - before[w]!.cpu;
      });
      latencyCpu.samples += options.latencySamples;
      latency.localMs.push(median(ms.local));
      latency.cluster.push(median(ms.cluster) / median(ms.local));
      latency.http.push(median(ms.http) / median(ms.local));
      console.log(
        `round ${round}: local ${median(ms.local).toFixed(1)} ms, cluster ${median(ms.cluster).toFixed(1)} ms ` +
          `(${(median(ms.cluster) / median(ms.local)).toFixed(3)}x), HTTP ${median(ms.http).toFixed(1)} ms ` +
          `(${(median(ms.http) / median(ms.local)).toFixed(3)}x) (medians)`,
      );
    }
    timings.enabled = false;
    const latencyScrapeAfter = await http.scrape();
    console.log(
      `cluster / local: ${medianSpread(latency.cluster, 3)}x vs target <= ${LATENCY_TARGET.toFixed(2)}: ` +
        `${verdict(median(latency.cluster) <= LATENCY_TARGET)}`,
    );
    console.log(
      `HTTP / local:    ${medianSpread(latency.http, 3)}x vs target <= ${HTTP_LATENCY_TARGET.toFixed(2)}: ` +
        `${verdict(median(latency.http) <= HTTP_LATENCY_TARGET)}`,
    );
    console.log('cluster stages (one request alone):');
    console.log(describeStages((m, s) => timings.meanMs(m, s)));
    console.log('HTTP master stages (one request alone):');
    console.log(describeStages((m, s) => scrapedMeanMs(latencyScrape, latencyScrapeAfter, m, s)));
    const computes = [0, 1].map((stage) => timings.meanMs('compute', stage));
    const localLatency = median(latency.localMs);
    console.log(
      `  balance: slowest stage / mean = ${(Math.max(...computes) / mean(computes)).toFixed(3)}; ` +
        `stage computes sum to ${((100 * (computes[0]! + computes[1]!)) / localLatency).toFixed(1)}% of a local predict`,
    );
    const perSample = (v: number) => v / latencyCpu.samples;
    const clusterLatencyCpu = perSample(latencyCpu.master + latencyCpu.workers[0]! + latencyCpu.workers[1]!);
    console.log(
      `  CPU per request (load-independent): local ${perSample(latencyCpu.local).toFixed(1)} ms, cluster ` +
        `${clusterLatencyCpu.toFixed(1)} ms (master ${perSample(latencyCpu.master).toFixed(1)} + ` +
        `${clusterWorkers.map((w, i) => `${w.name} ${perSample(latencyCpu.workers[i]!).toFixed(1)}`).join(' + ')}): ` +
        `ratio ${(clusterLatencyCpu / perSample(latencyCpu.local)).toFixed(3)}`,
    );

    // ---- throughput: interleaved rounds of the four subjects.
    console.log(
      `\n-- throughput: ${options.localRequests} local predicts (per process for the ceiling), ` +
        `${options.requests} cluster and HTTP requests at concurrency ${options.concurrency}, ${options.rounds} rounds --`,
    );
    console.log(
      '(img/s over whole streams, pipeline fill and drain included; steady: between the first and last ' +
        '`concurrency` answers; cpu: ms per request of each process; busy: share of wall time a worker was ' +
        'computing or runnable, the rest it waited for input)',
    );
    const rounds: Round[] = [];
    timings.reset();
    const httpScrapeStart = await http.scrape();
    for (let round = 0; round < options.rounds; round++) {
      const cpu: Record<string, number> = {};
      const busy: Record<string, number> = {};
      const rates = { local: 0, ceiling: 0, cluster: 0, clusterSteady: 0, http: 0, httpSteady: 0 };
      let httpBatchRows = Number.NaN;
      /** Runs a stream through a cluster, charging each of its workers CPU per request and a busy share. */
      const throughWorkers = async (
        workers: readonly Worker[],
        round: number,
        run: () => Promise<StreamTiming>,
      ): Promise<StreamTiming> => {
        if (profileDir !== undefined) profileStart(workers);
        const before = await workerTimes(workers);
        const timing = await run();
        if (profileDir !== undefined) await profileStop(workers, profileDir, round);
        const after = await workerTimes(workers);
        workers.forEach((w, i) => {
          const span = timesBetween(before[i]!, after[i]!);
          cpu[w.name] = span.cpu / options.requests;
          busy[w.name] = span.active / (span.active + span.idle);
        });
        return timing;
      };
      const subjects = ['local', 'ceiling', 'cluster', 'http'] as const;
      for (let k = 0; k < subjects.length; k++) {
        const which = subjects[(k + round) % subjects.length]!;
        if (which === 'local') {
          const c0 = processCpuMs();
          const { ms } = await stream(options.localRequests, 1, inputs, localInfer);
          rates.local = (1000 * options.localRequests) / ms;
          cpu.local = (processCpuMs() - c0) / options.localRequests;
        } else if (which === 'ceiling') {
          const ran = await Promise.all(
            predictors.map((p) => p.ask({ type: 'run', count: options.localRequests }, 'ran')),
          );
          rates.ceiling = (1000 * 2 * options.localRequests) / Math.max(...ran.map((r) => r.ms));
          predictors.forEach((p, i) => {
            cpu[p.name] = ran[i]!.times.cpu / options.localRequests;
          });
        } else if (which === 'cluster') {
          const timing = await throughWorkers(clusterWorkers, round, async () => {
            const profile = profileDir === undefined ? undefined : await startCpuProfile();
            const c0 = processCpuMs();
            timings.enabled = true;
            const streamed = await stream(options.requests, options.concurrency, inputs, clusterInfer);
            timings.enabled = false;
            cpu.master = (processCpuMs() - c0) / options.requests;
            if (profileDir !== undefined) {
              await profile?.stop(path.join(profileDir, `master-round${round}.cpuprofile`));
            }
            return streamed;
          });
          rates.cluster = (1000 * options.requests) / timing.ms;
          rates.clusterSteady = timing.steadyPerSecond;
        } else {
          const timing = await throughWorkers(httpWorkers, round, async () => {
            const scraped = await http.scrape();
            const streamed = await stream(options.requests, options.concurrency, inputs, httpInfer);
            const scrapedAfter = await http.scrape();
            const delta = (sample: string) => scrapedDelta(scraped, scrapedAfter, sample);
            cpu['http master'] = (1000 * delta('process_cpu_seconds_total')) / options.requests;
            httpBatchRows =
              delta(`dinfer_batch_size_sum{model="${MODEL_NAME}"}`) /
              delta(`dinfer_batch_size_count{model="${MODEL_NAME}"}`);
            return streamed;
          });
          rates.http = (1000 * options.requests) / timing.ms;
          rates.httpSteady = timing.steadyPerSecond;
        }
      }
      const result: Round = { ...rates, cpu, busy, httpBatchRows };
      rounds.push(result);
      console.log(
        `round ${round}: img/s local ${rates.local.toFixed(2)}, ceiling ${rates.ceiling.toFixed(2)} ` +
          `(${(rates.ceiling / rates.local).toFixed(2)}x), cluster ${rates.cluster.toFixed(2)} ` +
          `(${(rates.cluster / rates.local).toFixed(2)}x local, ${(rates.cluster / rates.ceiling).toFixed(2)} of ceiling, ` +
          `steady ${(rates.clusterSteady / rates.local).toFixed(2)}x), HTTP ${rates.http.toFixed(2)} ` +
          `(${(rates.http / rates.local).toFixed(2)}x local, ${(rates.http / rates.ceiling).toFixed(2)} of ceiling, ` +
          `steady ${(rates.httpSteady / rates.local).toFixed(2)}x, ${httpBatchRows.toFixed(2)} rows per batch)`,
      );
      console.log(
        `  cpu ms/request: ${Object.entries(cpu)
          .map(([name, ms]) => `${name} ${ms.toFixed(1)}`)
          .join(', ')}; busy: ${Object.entries(busy)
          .map(([name, share]) => `${name} ${(100 * share).toFixed(0)}%`)
          .join(', ')}`,
      );
    }
    const httpScrapeEnd = await http.scrape();
    const series = (f: (r: Round) => number) => rounds.map(f);
    const ceilingRatio = series((r) => r.ceiling / r.local);
    console.log('\ncluster stages (throughput rounds):');
    console.log(describeStages((m, s) => timings.meanMs(m, s)));
    console.log('HTTP master stages (throughput rounds):');
    console.log(describeStages((m, s) => scrapedMeanMs(httpScrapeStart, httpScrapeEnd, m, s)));
    console.log(`\nceiling / local (two plain processes): ${medianSpread(ceilingRatio)}x`);
    for (const [label, rate] of [
      ['cluster', (r: Round) => r.cluster],
      ['HTTP   ', (r: Round) => r.http],
    ] as const) {
      const ofCeiling = series((r) => rate(r) / r.ceiling);
      const ofLocal = series((r) => rate(r) / r.local);
      const judged = rounds.filter((r) => r.ceiling / r.local >= LOCAL_TARGET_CEILING);
      const judgedLocal = median(judged.map((r) => rate(r) / r.local));
      console.log(
        `${label} / ceiling: ${medianSpread(ofCeiling)} vs target >= ${CEILING_TARGET}: ${verdict(median(ofCeiling) >= CEILING_TARGET)}; ` +
          `${label.trim()} / local: ${medianSpread(ofLocal)}x` +
          (judged.length === 0
            ? ` (no round with the ceiling >= ${LOCAL_TARGET_CEILING}x: the ${LOCAL_TARGET}x target is not judged)`
            : ` (${judged.length} rounds with the ceiling >= ${LOCAL_TARGET_CEILING}x: ${judgedLocal.toFixed(2)}x vs target >= ${LOCAL_TARGET}x: ${verdict(judgedLocal >= LOCAL_TARGET)})`),
      );
    }

    // ---- CPU time per request: what the pipeline would do on 2 otherwise idle cores.
    const cpuOf = (name: string) => median(series((r) => r.cpu[name] ?? Number.NaN));
    const localCpu = cpuOf('local');
    const cores = Math.min(2, availableParallelism());
    console.log(`\n-- CPU time per request (load-independent; medians over rounds) --`);
    // Two processes computing at once each pay more per image than one alone (shared caches
    // and memory bandwidth): the ceiling's own cost, and the fair yardstick for the workers.
    const plainCpu = (cpuOf('p0') + cpuOf('p1')) / 2;
    console.log(
      `local predict ${localCpu.toFixed(1)} ms; plain processes two at once ${cpuOf('p0').toFixed(1)} / ${cpuOf('p1').toFixed(1)} ms ` +
        `(${(plainCpu / localCpu).toFixed(3)}x local)`,
    );
    for (const [label, masterName, workers] of [
      ['cluster', 'master', clusterWorkers],
      ['HTTP', 'http master', httpWorkers],
    ] as const) {
      const masterCpu = cpuOf(masterName);
      const workerCpu = workers.map((w) => cpuOf(w.name));
      const total = masterCpu + workerCpu.reduce((a, b) => a + b, 0);
      // The period is bounded by the busiest worker (one thread each) and by the total CPU
      // spread over the cores.
      const period = Math.max(total / cores, ...workerCpu);
      console.log(
        `${label}: master ${masterCpu.toFixed(2)} ms (${((100 * masterCpu) / Math.max(...workerCpu)).toFixed(1)}% of a stage), ` +
          `${workers.map((w, i) => `${w.name} ${workerCpu[i]!.toFixed(1)} ms`).join(', ')}, total ${total.toFixed(1)} ms ` +
          `(${(total / localCpu).toFixed(3)}x local, ${(total / plainCpu).toFixed(3)}x a plain process beside another); ` +
          `on ${cores} idle cores: period ${period.toFixed(1)} ms -> ${(localCpu / period).toFixed(2)}x local, ` +
          `${(plainCpu / period / cores).toFixed(2)} of the ceiling`,
      );
    }

    // ---- the JSON path, measured on its own.
    const json = measureJson(inputs[0]!, 5);
    console.log(`\n-- JSON path for one 224x224x3 input (not on the measured paths above; median of 5) --`);
    console.log(
      `nested array (${(json.bytes / 1e6).toFixed(2)} MB text): client nest + stringify ${json.encodeMs.toFixed(1)} ms, ` +
        `server parse + flatten ${json.decodeMs.toFixed(1)} ms (${((100 * json.decodeMs) / localLatency).toFixed(1)}% of a local predict)`,
    );
    console.log(
      `flat array   (${(json.flatBytes / 1e6).toFixed(2)} MB text): client stringify ${json.flatEncodeMs.toFixed(1)} ms, ` +
        `server parse + Float32Array ${json.flatDecodeMs.toFixed(1)} ms (${((100 * json.flatDecodeMs) / localLatency).toFixed(1)}% of a local predict)`,
    );
    console.log(`\nmachine: ${loadLine()} (at end)`);
    if (failure) throw failure;
  } finally {
    stopping = true;
    await coordinator.stop();
    await master?.stop();
    await stopBenchChildren(children);
    await rm(cacheDir, { recursive: true, force: true });
    model.dispose();
  }
}

await main();
