/**
 * The worker's current {@link WorkerLoad}, for heartbeats and `pong` replies.
 *
 * @module
 */
import { platform } from '#platform';
import { DinferError, DinferErrorCode } from '../errors.js';
import type { WorkerLoad } from '../scheduler.js';

/** Options for {@link createLoadMonitor}. */
export interface LoadMonitorOptions {
  /** Cores the process may use (the CPU share is divided by them). */
  readonly cores: number;
  /** The worker's memory budget; free memory is this minus the process's RSS. */
  readonly memoryBytes: number;
  /** Reads the number of requests waiting. */
  readonly queueLength: () => number;
  /** Weight of the newest compute time in the latency average, in (0, 1]. Default 0.2. */
  readonly latencyAlpha?: number | undefined;
  /** Shortest window a CPU sample covers; closer samples repeat the last value. Default 50 ms. */
  readonly minSampleMs?: number | undefined;
}

/** Tracks a worker's load. */
export interface LoadMonitor {
  /** Feeds one stage compute time (ms) into the latency average. */
  recordCompute(ms: number): void;
  /** The load now: CPU share since the previous sample, free memory, queue, mean latency. */
  sample(): WorkerLoad;
}

/**
 * Creates a {@link LoadMonitor}: `cpu` is the process's CPU time (`process.cpuUsage` in Node)
 * over wall time since the previous sample, divided by `cores` and clamped to [0, 1]; where
 * the runtime does not tell CPU time (a browser), the share of that wall time spent in the
 * recorded computes; `freeMemoryBytes` is `memoryBytes` minus the memory the process holds
 * (its RSS in Node; all of it where the runtime does not tell), floored at 0; `latencyMs` is
 * an exponentially weighted moving average of compute times (0 before the first).
 */
export function createLoadMonitor(options: LoadMonitorOptions): LoadMonitor {
  const { cores, memoryBytes, queueLength } = options;
  const alpha = options.latencyAlpha ?? 0.2;
  const minSampleMs = options.minSampleMs ?? 50;
  if (!(cores >= 1) || !(memoryBytes >= 0) || !(alpha > 0 && alpha <= 1) || !(minSampleMs >= 0)) {
    throw new DinferError(
      DinferErrorCode.INVALID_ARGUMENT,
      'load monitor needs cores >= 1, memoryBytes >= 0, alpha in (0, 1]',
      {
        details: { cores, memoryBytes, alpha, minSampleMs },
      },
    );
  }
  let latency: number | undefined;
  let lastCpu = platform.cpuTimeMs();
  let computedMs = 0;
  let lastWall = performance.now();
  let cpu = 0;
  return {
    recordCompute(ms: number): void {
      if (!Number.isFinite(ms) || ms < 0) return;
      computedMs += ms;
      latency = latency === undefined ? ms : latency + alpha * (ms - latency);
    },
    sample(): WorkerLoad {
      const now = performance.now();
      const elapsedMs = now - lastWall;
      if (elapsedMs >= minSampleMs) {
        const cpuNow = platform.cpuTimeMs();
        const share =
          cpuNow !== undefined && lastCpu !== undefined
            ? (cpuNow - lastCpu) / (elapsedMs * cores)
            : computedMs / elapsedMs;
        cpu = Math.min(1, Math.max(0, share));
        lastCpu = cpuNow;
        computedMs = 0;
        lastWall = now;
      }
      return {
        cpu,
        freeMemoryBytes: Math.max(0, memoryBytes - (platform.memoryInUseBytes() ?? 0)),
        queueLength: queueLength(),
        latencyMs: latency ?? 0,
      };
    },
  };
}
