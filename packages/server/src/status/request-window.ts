/**
 * A sliding window over the last minute of answered requests: throughput, error rate and
 * latency percentiles for `GET /api/status`, plus a per-second series for the status page's
 * sparkline.
 *
 * The window is a ring of one-second buckets. Each bucket keeps exact counts, sum, min and
 * max, and a bounded reservoir of latencies (uniform sampling past its capacity), so memory
 * stays bounded at any request rate while percentiles stay exact at moderate rates.
 *
 * @module
 */
import { DinferError, DinferErrorCode } from '@dinfer/core';

/** How one request ended, as the window counts it. */
export type RequestOutcome = 'success' | 'client_error' | 'server_error';

/** Options of {@link createRequestWindow}. */
export interface RequestWindowOptions {
  /** Length of the window in seconds. Default 60. */
  readonly windowSeconds?: number | undefined;
  /** Latencies kept per one-second bucket for percentiles. Default 2048. */
  readonly samplesPerSecond?: number | undefined;
  /** Clock in ms (tests pass a fake one). Default `Date.now`. */
  readonly now?: (() => number) | undefined;
}

/** Latency figures of successful requests, in ms. */
export interface LatencySummary {
  readonly min: number;
  readonly avg: number;
  readonly max: number;
  readonly p50: number;
  readonly p95: number;
  readonly p99: number;
}

/** One second of the window. */
export interface WindowPoint {
  /** Start of the second, ms since the epoch. */
  readonly time: number;
  readonly requests: number;
  /** Requests that ended in a server error (5xx). */
  readonly errors: number;
  /** Mean latency of the second's successful requests in ms, null when there were none. */
  readonly avgLatencyMs: number | null;
}

/** A snapshot of the window. */
export interface WindowSnapshot {
  /** Seconds the figures cover: the window, or less right after start. */
  readonly windowSeconds: number;
  readonly requests: number;
  readonly successes: number;
  readonly clientErrors: number;
  readonly serverErrors: number;
  /** Requests answered per second over `windowSeconds`. */
  readonly throughputPerSecond: number;
  /** `serverErrors / requests` (0 with no requests): failures of the service, not of the client. */
  readonly errorRate: number;
  /** Null when no request succeeded in the window. */
  readonly latencyMs: LatencySummary | null;
  /** One point per second, oldest first, the current (partial) second last. */
  readonly series: readonly WindowPoint[];
}

/** Records answered requests; {@link RequestWindow.snapshot} summarises the last window. */
export interface RequestWindow {
  /** Records one answered request and its latency in ms (arrival to answer). */
  record(outcome: RequestOutcome, latencyMs: number): void;
  snapshot(): WindowSnapshot;
}

interface Bucket {
  second: number;
  requests: number;
  successes: number;
  clientErrors: number;
  serverErrors: number;
  sum: number;
  min: number;
  max: number;
  samples: number[];
}

function emptyBucket(second: number): Bucket {
  return {
    second,
    requests: 0,
    successes: 0,
    clientErrors: 0,
    serverErrors: 0,
    sum: 0,
    min: Number.POSITIVE_INFINITY,
    max: Number.NEGATIVE_INFINITY,
    samples: [],
  };
}

/** The `q` quantile (0-1) of sorted values, nearest-rank. */
export function nearestRank(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil(q * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))] as number;
}

class SlidingRequestWindow implements RequestWindow {
  readonly #seconds: number;
  readonly #capacity: number;
  readonly #now: () => number;
  readonly #buckets: Bucket[];
  readonly #startedSecond: number;

  constructor(options: RequestWindowOptions) {
    this.#seconds = options.windowSeconds ?? 60;
    this.#capacity = options.samplesPerSecond ?? 2048;
    if (!Number.isInteger(this.#seconds) || this.#seconds < 1 || this.#seconds > 3600) {
      throw new DinferError(
        DinferErrorCode.INVALID_ARGUMENT,
        `windowSeconds ${this.#seconds} must be an integer from 1 to 3600`,
      );
    }
    if (!Number.isInteger(this.#capacity) || this.#capacity < 1) {
      throw new DinferError(
        DinferErrorCode.INVALID_ARGUMENT,
        `samplesPerSecond ${this.#capacity} must be a positive integer`,
      );
    }
    this.#now = options.now ?? Date.now;
    this.#startedSecond = Math.floor(this.#now() / 1000);
    this.#buckets = Array.from({ length: this.#seconds }, () => emptyBucket(-1));
  }

  #bucket(second: number): Bucket {
    const index = second % this.#seconds;
    let bucket = this.#buckets[index] as Bucket;
    if (bucket.second !== second) {
      bucket = emptyBucket(second);
      this.#buckets[index] = bucket;
    }
    return bucket;
  }

  record(outcome: RequestOutcome, latencyMs: number): void {
    const bucket = this.#bucket(Math.floor(this.#now() / 1000));
    bucket.requests++;
    if (outcome === 'client_error') bucket.clientErrors++;
    else if (outcome === 'server_error') bucket.serverErrors++;
    else {
      if (!Number.isFinite(latencyMs) || latencyMs < 0) return;
      bucket.successes++;
      bucket.sum += latencyMs;
      bucket.min = Math.min(bucket.min, latencyMs);
      bucket.max = Math.max(bucket.max, latencyMs);
      if (bucket.samples.length < this.#capacity) bucket.samples.push(latencyMs);
      else {
        // Reservoir sampling: each of the second's latencies is kept with equal probability.
        const slot = Math.floor(Math.random() * bucket.successes);
        if (slot < this.#capacity) bucket.samples[slot] = latencyMs;
      }
    }
  }

  snapshot(): WindowSnapshot {
    const current = Math.floor(this.#now() / 1000);
    const first = Math.max(current - this.#seconds + 1, this.#startedSecond);
    let requests = 0;
    let successes = 0;
    let clientErrors = 0;
    let serverErrors = 0;
    let sum = 0;
    let min = Number.POSITIVE_INFINITY;
    let max = Number.NEGATIVE_INFINITY;
    const samples: number[] = [];
    const series: WindowPoint[] = [];
    for (let second = first; second <= current; second++) {
      const stored = this.#buckets[second % this.#seconds] as Bucket;
      const bucket = stored.second === second ? stored : undefined;
      series.push({
        time: second * 1000,
        requests: bucket?.requests ?? 0,
        errors: bucket?.serverErrors ?? 0,
        avgLatencyMs: bucket && bucket.successes > 0 ? bucket.sum / bucket.successes : null,
      });
      if (!bucket) continue;
      requests += bucket.requests;
      successes += bucket.successes;
      clientErrors += bucket.clientErrors;
      serverErrors += bucket.serverErrors;
      sum += bucket.sum;
      min = Math.min(min, bucket.min);
      max = Math.max(max, bucket.max);
      for (const s of bucket.samples) samples.push(s);
    }
    // The current second is partial: count the elapsed part of it, at least one second overall.
    const elapsed = current - first + (this.#now() % 1000) / 1000;
    const windowSeconds = Math.max(1, Math.min(this.#seconds, elapsed));
    samples.sort((a, b) => a - b);
    return {
      windowSeconds,
      requests,
      successes,
      clientErrors,
      serverErrors,
      throughputPerSecond: requests / windowSeconds,
      errorRate: requests === 0 ? 0 : serverErrors / requests,
      latencyMs:
        successes === 0
          ? null
          : {
              min,
              avg: sum / successes,
              max,
              p50: nearestRank(samples, 0.5),
              p95: nearestRank(samples, 0.95),
              p99: nearestRank(samples, 0.99),
            },
      series,
    };
  }
}

/**
 * Creates a sliding window of answered requests.
 *
 * @throws DinferError INVALID_ARGUMENT for a window outside 1-3600 s or a non-positive capacity.
 */
export function createRequestWindow(options: RequestWindowOptions = {}): RequestWindow {
  return new SlidingRequestWindow(options);
}
