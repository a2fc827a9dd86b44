/**
 * The one backoff of dinfer: exponential, with decorrelated jitter, from cockatiel. Redialing
 * connections, the worker's rejoin loop and the coordinator's stage retries all take their
 * delays from {@link createBackoff}; {@link retryWithBackoff} is the retry loop itself.
 *
 * @module
 */
import {
  decorrelatedJitterGenerator,
  ExponentialBackoff,
  type IBackoffFactory,
  noJitterGenerator,
} from 'cockatiel';
import { DinferError, DinferErrorCode } from '../errors.js';

/** How a dropped link (or a failed dial) is retried. */
export interface ReconnectOptions {
  /** Scale of the first delay, in ms. Default 200. */
  readonly initialDelayMs?: number | undefined;
  /** Longest delay between two attempts, in ms. Default 10 000. */
  readonly maxDelayMs?: number | undefined;
  /** Give up after this many failed attempts in a row. Default: never. */
  readonly maxAttempts?: number | undefined;
  /**
   * `true` (the default): decorrelated jitter, so a crowd of peers does not retry in
   * lockstep. `false`: `initialDelayMs * 2^n`, capped at `maxDelayMs`.
   */
  readonly jitter?: boolean | undefined;
}

/** {@link ReconnectOptions} with every default applied. */
export interface ResolvedReconnectOptions {
  readonly initialDelayMs: number;
  readonly maxDelayMs: number;
  readonly maxAttempts: number;
  readonly jitter: boolean;
}

/** Defaults of {@link ReconnectOptions}. */
export const DEFAULT_RECONNECT: ResolvedReconnectOptions = Object.freeze({
  initialDelayMs: 200,
  maxDelayMs: 10_000,
  maxAttempts: Number.POSITIVE_INFINITY,
  jitter: true,
});

/**
 * Validates `options` and applies the defaults (`defaults`, or {@link DEFAULT_RECONNECT}).
 *
 * @throws DinferError `INVALID_ARGUMENT` naming the bad field.
 */
export function resolveReconnectOptions(
  options: ReconnectOptions,
  defaults: ResolvedReconnectOptions = DEFAULT_RECONNECT,
  what = 'reconnect',
): ResolvedReconnectOptions {
  const bad = (reason: string): never => {
    throw new DinferError(DinferErrorCode.INVALID_ARGUMENT, `${what}.${reason}`, { details: { ...options } });
  };
  if (typeof options !== 'object' || options === null) bad('options must be an object');
  const initialDelayMs = options.initialDelayMs ?? defaults.initialDelayMs;
  const maxDelayMs = options.maxDelayMs ?? Math.max(defaults.maxDelayMs, initialDelayMs);
  const maxAttempts = options.maxAttempts ?? defaults.maxAttempts;
  if (typeof initialDelayMs !== 'number' || !Number.isFinite(initialDelayMs) || initialDelayMs < 0) {
    bad('initialDelayMs must be a number >= 0');
  }
  if (typeof maxDelayMs !== 'number' || !Number.isFinite(maxDelayMs) || maxDelayMs < initialDelayMs) {
    bad('maxDelayMs must be a number >= initialDelayMs');
  }
  if (maxAttempts !== Number.POSITIVE_INFINITY && (!Number.isInteger(maxAttempts) || maxAttempts < 1)) {
    bad('maxAttempts must be an integer >= 1');
  }
  if (options.jitter !== undefined && typeof options.jitter !== 'boolean') bad('jitter must be a boolean');
  return { initialDelayMs, maxDelayMs, maxAttempts, jitter: options.jitter ?? defaults.jitter };
}

/**
 * The delays of a retry sequence, as a cockatiel backoff: `createBackoff(o).next()` is the
 * first delay, and each `.next()` of that the following one.
 */
export function createBackoff(
  options: Pick<ResolvedReconnectOptions, 'initialDelayMs' | 'maxDelayMs' | 'jitter'>,
): IBackoffFactory<unknown> {
  return new ExponentialBackoff<unknown>({
    initialDelay: options.initialDelayMs,
    maxDelay: options.maxDelayMs,
    generator: (options.jitter ? decorrelatedJitterGenerator : noJitterGenerator) as never,
  });
}

/** Resolves `true` after `ms`, or `false` as soon as `signal` aborts. */
function sleep(ms: number, signal?: AbortSignal): Promise<boolean> {
  if (signal?.aborted) return Promise.resolve(false);
  return new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      resolve(false);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Options of {@link retryWithBackoff}. */
export interface RetryOptions {
  /** Stops retrying: the loop rejects with `DINFER_ERR_ABORTED`. */
  readonly signal?: AbortSignal | undefined;
  /** Whether `error` (from attempt number `attempt`, 1-based) is worth another attempt. Default: always. */
  readonly retryable?: ((error: unknown, attempt: number) => boolean) | undefined;
  /** Called before waiting `delayMs` for attempt `attempt + 1`. */
  readonly onRetry?: ((error: unknown, delayMs: number, attempt: number) => void) | undefined;
  /** Wait one delay before the first attempt too (redialing a link that just dropped). Default false. */
  readonly delayFirst?: boolean | undefined;
}

/**
 * Runs `attempt` until it resolves, waiting a backoff delay between failures. Rejects with the
 * last error once it is not `retryable` or `maxAttempts` attempts have failed, and with
 * `DINFER_ERR_ABORTED` when `signal` aborts.
 */
export async function retryWithBackoff<T>(
  attempt: (attempt: number) => Promise<T>,
  backoff: ResolvedReconnectOptions,
  options: RetryOptions = {},
): Promise<T> {
  const signal = options.signal;
  let delays = createBackoff(backoff).next(undefined);
  const aborted = (): DinferError =>
    new DinferError(DinferErrorCode.ABORTED, 'retry aborted', { cause: signal?.reason });
  if (options.delayFirst === true) {
    if (!(await sleep(delays.duration, signal))) throw aborted();
    delays = delays.next(undefined);
  }
  for (let n = 1; ; n++) {
    if (signal?.aborted) throw aborted();
    try {
      return await attempt(n);
    } catch (error) {
      if (signal?.aborted) throw aborted();
      if (n >= backoff.maxAttempts || !(options.retryable?.(error, n) ?? true)) throw error;
      const delayMs = delays.duration;
      options.onRetry?.(error, delayMs, n);
      if (!(await sleep(delayMs, signal))) throw aborted();
      delays = delays.next(undefined);
    }
  }
}
