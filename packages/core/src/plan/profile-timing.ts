/**
 * What both layer profilers share: their settings, the clock, and timing one layer call until
 * its outputs are computed. Internal module.
 *
 * @module
 */
import * as tf from '@tensorflow/tfjs';
import { DinferError, DinferErrorCode } from '../errors.js';

/** Options of the layer profilers (`profileLayers`, `profileTopology`). */
export interface ProfileOptions {
  /** Timed runs; each layer's result is the median over them. Default 3. */
  readonly runs?: number;
  /** Untimed runs first (kernel compilation, allocator warm-up). Default 1. */
  readonly warmup?: number;
  /** Batch size of the random input. Default 1. */
  readonly batchSize?: number;
  /**
   * What to time with. `'wall'` (default): elapsed time, right for every backend. `'cpu'`:
   * this process' CPU time (Node only), which ignores time lost to other processes on a busy
   * machine; right only for backends that compute on the calling thread (wasm with one
   * thread, cpu), not for GPU backends or thread pools. `'auto'`: `'cpu'` in Node on those
   * backends, `'wall'` otherwise.
   */
  readonly clock?: ProfileClock | 'auto';
  /**
   * When to wait for each layer's outputs with a `dataSync()`: `'auto'` (default) only on
   * backends that compute off the calling thread (not wasm or cpu, whose kernels are done when
   * `apply` returns); `'always'` on every backend.
   */
  readonly sync?: 'auto' | 'always';
  /** Aborts between layers; the promise rejects with an `ABORTED` DinferError. */
  readonly signal?: AbortSignal;
}

/** The clocks {@link profileLayers} can time with. */
export type ProfileClock = 'wall' | 'cpu';

/**
 * Returns a function reading the given clock in milliseconds.
 *
 * @throws DinferError `INVALID_ARGUMENT` for an unknown clock, or `'cpu'` outside Node.
 */
export function clockReader(clock: ProfileClock): () => number {
  if (clock === 'wall') return () => performance.now();
  if (clock === 'cpu' && typeof process !== 'undefined' && typeof process.cpuUsage === 'function') {
    return () => {
      const usage = process.cpuUsage();
      return (usage.user + usage.system) / 1000;
    };
  }
  throw new DinferError(
    DinferErrorCode.INVALID_ARGUMENT,
    clock === 'cpu' ? 'the cpu clock needs Node (process.cpuUsage)' : `unknown clock "${String(clock)}"`,
    { details: { clock } },
  );
}

/** Checks an integer option. */
export function positiveInt(name: string, value: number, min: number): number {
  if (!Number.isInteger(value) || value < min) {
    throw new DinferError(
      DinferErrorCode.INVALID_ARGUMENT,
      `${name} must be an integer >= ${min}, got ${value}`,
      {
        details: { [name]: value },
      },
    );
  }
  return value;
}

/** The resolved settings of a profiling run. */
export interface ProfileSettings {
  readonly runs: number;
  readonly warmup: number;
  readonly batchSize: number;
  readonly signal: AbortSignal | undefined;
  readonly now: () => number;
  /** True when kernels finish before the op returns (no read-back needed). */
  readonly synchronous: boolean;
}

/**
 * Checks and resolves {@link ProfileOptions}.
 *
 * @throws DinferError INVALID_ARGUMENT for a bad option.
 */
export function profileSettings(options: ProfileOptions): ProfileSettings {
  const runs = positiveInt('runs', options.runs ?? 3, 1);
  const warmup = positiveInt('warmup', options.warmup ?? 1, 0);
  const batchSize = positiveInt('batchSize', options.batchSize ?? 1, 1);
  const clock = options.clock ?? 'wall';
  const cpuAvailable = typeof process !== 'undefined' && typeof process.cpuUsage === 'function';
  const now = clockReader(
    clock === 'auto' ? (cpuAvailable && SYNCHRONOUS_BACKENDS.has(tf.getBackend()) ? 'cpu' : 'wall') : clock,
  );
  const sync = options.sync ?? 'auto';
  if (sync !== 'auto' && sync !== 'always') {
    throw new DinferError(
      DinferErrorCode.INVALID_ARGUMENT,
      `sync must be 'auto' or 'always', got "${String(sync)}"`,
    );
  }
  const synchronous = sync === 'auto' && SYNCHRONOUS_BACKENDS.has(tf.getBackend());
  return { runs, warmup, batchSize, signal: options.signal, now, synchronous };
}

/** The median of `values`. */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Throws ABORTED when `signal` is aborted. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) {
    throw new DinferError(DinferErrorCode.ABORTED, 'layer profiling was aborted', { cause: signal.reason });
  }
}

/**
 * Backends whose kernels finish before the op returns (they compute on the calling thread):
 * timing `apply` alone is exact, and a read-back would only add a copy that a fused
 * `predict` never makes.
 */
const SYNCHRONOUS_BACKENDS: ReadonlySet<string> = new Set(['cpu', 'wasm']);

/**
 * Time of `run()` until its outputs are computed. On a synchronous backend that is when it
 * returns. Otherwise the outputs are read back with `dataSync()` (which waits for the device)
 * and the time of a second read, the bare copy, is subtracted.
 */
export function timeLayer(
  run: () => tf.Tensor[],
  now: () => number,
  synchronous: boolean,
): [number, tf.Tensor[]] {
  const start = now();
  const outputs = run();
  if (synchronous) return [now() - start, outputs];
  for (const out of outputs) out.dataSync();
  const synced = now();
  for (const out of outputs) out.dataSync();
  const copyMs = now() - synced;
  return [Math.max(0, synced - start - copyMs), outputs];
}
