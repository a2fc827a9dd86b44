/**
 * What a worker declares about itself when it joins: backend, cores, memory and a measured
 * speed score.
 *
 * @module
 */

import * as tf from '@tensorflow/tfjs';
import { platform } from '#platform';
import { DinferError, DinferErrorCode } from '../errors.js';
import type { WorkerCapabilities } from '../scheduler.js';

/** Share of the machine's memory a worker offers when no budget is given. */
export const DEFAULT_MEMORY_FRACTION = 0.5;

/**
 * The most a TF.js backend can hold, in bytes, where it has a limit of its own: 4 GiB for
 * `wasm` (a 32-bit WebAssembly heap; allocations already fail near 3.84 GiB). `undefined`:
 * only the machine's memory bounds it.
 */
export function backendMemoryLimit(backend: string): number | undefined {
  return backend === 'wasm' ? 4 * 1024 ** 3 : undefined;
}

/**
 * The memory budget a process offers for stages when none is given: half of the machine's
 * memory (1 GiB where the runtime does not say how much it has), capped at the backend's own
 * limit (see {@link backendMemoryLimit}).
 */
export function defaultMemoryBudget(
  backend: string,
  machineBytes: number = platform.machine().memoryBytes ?? 2 * 1024 ** 3,
): number {
  return Math.floor(
    Math.min(machineBytes * DEFAULT_MEMORY_FRACTION, backendMemoryLimit(backend) ?? Number.POSITIVE_INFINITY),
  );
}

/** Options for {@link measureCapabilities}. */
export interface MeasureCapabilitiesOptions {
  /**
   * Memory the worker offers for its stages (weights, their loading copy, activations), in
   * bytes. Default: {@link defaultMemoryBudget} of the active backend.
   */
  readonly memoryBytes?: number | undefined;
  /** Time budget of the speed benchmark, in ms (at least one timed run happens). Default 200. */
  readonly benchmarkMs?: number | undefined;
  /** Side of the square matrices multiplied by the benchmark. Default 256. */
  readonly matrixSize?: number | undefined;
}

/** Result of {@link benchmarkMatmul}. */
export interface MatmulBenchmark {
  /** Measured speed in GFLOP/s (2·n³ operations per n×n product). */
  readonly gflops: number;
  /** Timed products. */
  readonly runs: number;
  /** Total timed milliseconds. */
  readonly elapsedMs: number;
}

/**
 * Times n×n float32 matrix products on the active TF.js backend for about `budgetMs`
 * (after one untimed warm-up) and reports GFLOP/s. Leaves no tensors behind.
 */
export async function benchmarkMatmul(budgetMs = 200, n = 256): Promise<MatmulBenchmark> {
  if (!Number.isFinite(budgetMs) || budgetMs <= 0 || !Number.isInteger(n) || n < 1 || n > 4096) {
    throw new DinferError(
      DinferErrorCode.INVALID_ARGUMENT,
      'benchmark needs budgetMs > 0 and 1 <= n <= 4096',
      {
        details: { budgetMs, n },
      },
    );
  }
  const a = tf.randomUniform([n, n], -1, 1, 'float32', 1);
  const b = tf.randomUniform([n, n], -1, 1, 'float32', 2);
  try {
    const product = async (): Promise<void> => {
      const c = tf.matMul(a, b);
      await c.data(); // forces the work on asynchronous backends
      c.dispose();
    };
    await product();
    let runs = 0;
    const start = performance.now();
    let elapsedMs = 0;
    do {
      await product();
      runs += 1;
      elapsedMs = performance.now() - start;
    } while (elapsedMs < budgetMs);
    const gflops = (2 * n * n * n * runs) / (elapsedMs * 1e6);
    return { gflops, runs, elapsedMs };
  } finally {
    a.dispose();
    b.dispose();
  }
}

/**
 * Measures this process's {@link WorkerCapabilities}: the active TF.js backend (initialise it
 * first, e.g. with `initBackend()`), the cores the process may use, the memory budget
 * (given, or the backend's default),
 * and a score equal to the GFLOP/s of a short matmul benchmark (~`benchmarkMs`).
 */
export async function measureCapabilities(
  options: MeasureCapabilitiesOptions = {},
): Promise<WorkerCapabilities> {
  await tf.ready();
  const memoryBytes = options.memoryBytes ?? defaultMemoryBudget(tf.getBackend());
  if (!Number.isSafeInteger(memoryBytes) || memoryBytes < 0) {
    throw new DinferError(DinferErrorCode.INVALID_ARGUMENT, 'memoryBytes must be a non-negative integer', {
      details: { memoryBytes },
    });
  }
  const { gflops } = await benchmarkMatmul(options.benchmarkMs ?? 200, options.matrixSize ?? 256);
  return {
    backend: tf.getBackend(),
    cores: platform.machine().cores,
    memoryBytes,
    score: Math.round(gflops * 1000) / 1000,
  };
}
