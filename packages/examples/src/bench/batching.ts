/**
 * `pnpm bench:batching`: what dynamic batching does to throughput and latency, in ONE
 * process (no cluster). MobileNetV2 and ResNet50 (224x224x3) are served by
 * `localInferenceService` wrapped in `batchingService`; closed-loop clients (concurrency 1,
 * 8 and 32) send single-image requests with batching off (max batch 1) and on (max batch 8,
 * 5 ms delay), interleaved in the same run (each cell runs in two halves, off and on
 * alternating, so drift in machine load hits both alike). Prints images/s, p50/p99 latency,
 * the process CPU time per image (not inflated by other processes on a shared machine: wasm
 * computes on this one thread), the mean rows per inner call, and on/off ratios.
 *
 * What to expect on wasm with one thread: a batch costs about as much per image as single
 * images do, so batching gains little throughput here (on GPUs or multi-threaded backends it
 * does); its job is to never lose throughput under load and to keep the queue bounded.
 *
 * Options: `--models mobilenetv2,resnet50`, `--concurrency 1,8,32`, `--requests N` (per cell;
 * default 80 for MobileNetV2, 40 for ResNet50), `--max-batch 8`, `--delay-ms 5`.
 *
 * @module
 */

import {
  batchingService,
  describeBackend,
  type InferenceService,
  localInferenceService,
  type Metrics,
  noopMetrics,
  type TensorData,
} from '@dinfer/core';
import { type ExampleModelName, loadExampleModel } from '@dinfer/core/models';
import { initBackend } from '@dinfer/core/node';
import * as tf from '@tensorflow/tfjs';
import { Command, InvalidArgumentError } from 'commander';

const DEFAULT_REQUESTS: Readonly<Partial<Record<ExampleModelName, number>>> = {
  mobilenetv2: 80,
  resnet50: 40,
};

/** One measured cell of the table. */
interface Cell {
  readonly model: string;
  readonly concurrency: number;
  readonly batching: boolean;
  readonly requests: number;
  readonly imagesPerSecond: number;
  /** Process CPU time (user + system) per image, in ms. */
  readonly cpuMsPerImage: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly meanBatchRows: number;
}

/** Nearest-rank percentile of `values` (p in (0, 100]). */
function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1] ?? Number.NaN;
}

function parseList(value: string): number[] {
  const parts = value.split(',').map((p) => Number(p.trim()));
  if (parts.length === 0 || parts.some((n) => !Number.isInteger(n) || n < 1)) {
    throw new InvalidArgumentError(`expected positive integers like 1,8,32, got "${value}"`);
  }
  return parts;
}

function parsePositive(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1)
    throw new InvalidArgumentError(`expected a positive integer, got "${value}"`);
  return n;
}

/** Distinct deterministic 224x224x3 images in [0, 1). */
function images(count: number, shape: readonly number[]): TensorData[] {
  const size = shape.reduce((a, b) => a * b, 1);
  return Array.from({ length: count }, (_, k) => {
    const data = new Float32Array(size);
    let s = 12345 + k * 7919;
    for (let i = 0; i < size; i++) {
      s = (Math.imul(s, 1103515245) + 12345) >>> 0;
      data[i] = (s >>> 8) / 16777216;
    }
    return { dtype: 'float32', shape: [1, ...shape], data } as TensorData;
  });
}

/** Records the rows of each inner call the batcher makes. */
function batchRowsRecorder(): { metrics: Metrics; rows: number[] } {
  const rows: number[] = [];
  return {
    rows,
    metrics: {
      ...noopMetrics,
      observe: (name, _labels, value) => {
        if (name === 'dinfer_batch_size') rows.push(value);
      },
    },
  };
}

/** Raw figures of one run. */
interface Run {
  readonly latencies: number[];
  readonly seconds: number;
  readonly cpuMs: number;
  readonly rows: number[];
}

/** `concurrency` closed-loop clients send `requests` single-image requests in all. */
async function measure(
  local: InferenceService,
  model: string,
  inputs: readonly TensorData[],
  options: { concurrency: number; requests: number; maxBatchSize: number; delayMs: number },
): Promise<Run> {
  const recorder = batchRowsRecorder();
  const service = batchingService(local, {
    maxBatchSize: options.maxBatchSize,
    maxDelayMs: options.delayMs,
    maxQueue: 1024,
    // As `dinfer master` runs it: a lone request leaves at once, batches form while busy.
    flushWhenIdle: true,
    metrics: recorder.metrics,
  });
  const latencies: number[] = [];
  let next = 0;
  const cpu = process.cpuUsage();
  const started = performance.now();
  const client = async () => {
    while (next < options.requests) {
      const k = next++;
      const t0 = performance.now();
      await service.infer(model, [inputs[k % inputs.length] as TensorData]);
      latencies.push(performance.now() - t0);
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, client));
  const seconds = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  return { latencies, seconds, cpuMs: (used.user + used.system) / 1000, rows: recorder.rows };
}

/** One table cell from the runs of its halves. */
function summarize(runs: readonly Run[]): Omit<Cell, 'model' | 'concurrency' | 'batching'> {
  const latencies = runs.flatMap((r) => r.latencies);
  const rows = runs.flatMap((r) => r.rows);
  const seconds = runs.reduce((a, r) => a + r.seconds, 0);
  const cpuMs = runs.reduce((a, r) => a + r.cpuMs, 0);
  return {
    requests: latencies.length,
    imagesPerSecond: latencies.length / seconds,
    cpuMsPerImage: cpuMs / latencies.length,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    meanBatchRows: rows.length === 0 ? 0 : rows.reduce((a, b) => a + b, 0) / rows.length,
  };
}

const pad = (text: string, width: number) => text.padStart(width);

function printTable(cells: readonly Cell[]): void {
  const head = ['model', 'conc', 'batching', 'reqs', 'img/s', 'cpu ms/img', 'p50 ms', 'p99 ms', 'rows/call'];
  const widths = [12, 5, 9, 5, 8, 11, 9, 9, 10];
  console.log(head.map((h, i) => pad(h, widths[i]!)).join(' '));
  for (const c of cells) {
    const row = [
      c.model,
      String(c.concurrency),
      c.batching ? 'on' : 'off',
      String(c.requests),
      c.imagesPerSecond.toFixed(2),
      c.cpuMsPerImage.toFixed(1),
      c.p50Ms.toFixed(1),
      c.p99Ms.toFixed(1),
      c.meanBatchRows.toFixed(2),
    ];
    console.log(row.map((v, i) => pad(v, widths[i]!)).join(' '));
  }
}

async function main(): Promise<void> {
  const program = new Command('bench:batching')
    .option('--models <list>', 'example models', 'mobilenetv2,resnet50')
    .option('--concurrency <list>', 'client counts', parseList, [1, 8, 32])
    .option('--requests <n>', 'requests per cell (default 80 MobileNetV2, 40 ResNet50)', parsePositive)
    .option('--max-batch <n>', 'max batch size with batching on', parsePositive, 8)
    .option('--delay-ms <ms>', 'max batch delay with batching on', Number, 5)
    .parse();
  const opts = program.opts<{
    models: string;
    concurrency: number[];
    requests?: number;
    maxBatch: number;
    delayMs: number;
  }>();
  const backend = await initBackend();
  console.log(describeBackend(backend));
  const cells: Cell[] = [];
  const benchStart = performance.now();
  for (const name of opts.models.split(',').map((m) => m.trim()) as ExampleModelName[]) {
    const { model } = await loadExampleModel(name);
    const local = localInferenceService(model, { name });
    const shape = (local.models()[0]?.inputs[0]?.shape ?? []).slice(1).map((d) => d ?? 224);
    const inputs = images(4, shape);
    // Warm up both batch sizes (kernel setup, memory growth).
    for (const rows of [1, opts.maxBatch]) {
      const batch = {
        ...inputs[0]!,
        shape: [rows, ...shape],
        data: new Float32Array(rows * inputs[0]!.data.length),
      };
      await local.infer(name, [batch as TensorData]);
    }
    const requests = opts.requests ?? DEFAULT_REQUESTS[name] ?? 40;
    for (const concurrency of opts.concurrency) {
      const runs: Record<'off' | 'on', Run[]> = { off: [], on: [] };
      const halves = [Math.ceil(requests / 2), Math.floor(requests / 2)];
      for (const half of halves) {
        for (const batching of [false, true]) {
          runs[batching ? 'on' : 'off'].push(
            await measure(local, name, inputs, {
              concurrency,
              requests: half,
              maxBatchSize: batching ? opts.maxBatch : 1,
              delayMs: batching ? opts.delayMs : 0,
            }),
          );
        }
      }
      for (const batching of [false, true]) {
        const cell: Cell = {
          model: name,
          concurrency,
          batching,
          ...summarize(runs[batching ? 'on' : 'off']),
        };
        cells.push(cell);
        console.error(
          `  ${name} c=${concurrency} batching ${batching ? 'on ' : 'off'}: ${cell.imagesPerSecond.toFixed(2)} img/s, ${cell.cpuMsPerImage.toFixed(1)} cpu ms/img`,
        );
      }
    }
    model.dispose();
  }
  console.log(
    `\nOne process, ${backend.name} backend; batching on = max batch ${opts.maxBatch}, delay ${opts.delayMs} ms, flush when idle (as dinfer master); off = max batch 1.`,
  );
  printTable(cells);
  console.log('\nBatching on vs off (same run): throughput, CPU time per image, p99 latency:');
  for (const on of cells.filter((c) => c.batching)) {
    const off = cells.find((c) => !c.batching && c.model === on.model && c.concurrency === on.concurrency);
    if (!off) continue;
    console.log(
      `  ${pad(on.model, 12)} c=${pad(String(on.concurrency), 2)}: throughput x${(on.imagesPerSecond / off.imagesPerSecond).toFixed(2)}, cpu/img x${(on.cpuMsPerImage / off.cpuMsPerImage).toFixed(2)}, p99 x${(on.p99Ms / off.p99Ms).toFixed(2)}`,
    );
  }
  console.log(
    `\nTotal ${((performance.now() - benchStart) / 1000).toFixed(0)} s; tf tensors alive: ${tf.memory().numTensors}`,
  );
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
