/**
 * Exponential backoff with full jitter, for redialing a dropped connection.
 *
 * @module
 */
import { DinferError, DinferErrorCode } from '@dinfer/core';

/** How a dropped connection is redialed. */
export interface ReconnectOptions {
  /** Delay cap before the first retry, in milliseconds. */
  readonly initialDelayMs: number;
  /** Largest delay cap, in milliseconds. */
  readonly maxDelayMs: number;
  /** Give up after this many failed redials in a row (default: never). */
  readonly maxAttempts?: number | undefined;
  /**
   * `true` (full jitter, the default): wait a uniform random time in `[0, cap]`, so a crowd
   * of workers does not redial in lockstep. `false`: wait exactly `cap`.
   */
  readonly jitter?: boolean | undefined;
}

/**
 * The delay before retry number `attempt` (1-based): `cap = min(maxDelayMs, initialDelayMs * 2^(attempt-1))`,
 * then uniform in `[0, cap]` with jitter.
 */
export function backoffDelay(
  options: ReconnectOptions,
  attempt: number,
  random: () => number = Math.random,
): number {
  const cap = Math.min(options.maxDelayMs, options.initialDelayMs * 2 ** Math.min(attempt - 1, 52));
  return options.jitter === false ? cap : Math.floor(random() * (cap + 1));
}

/** Validates reconnect options. @throws DinferError `INVALID_ARGUMENT`. */
export function checkReconnectOptions(options: ReconnectOptions): ReconnectOptions {
  const { initialDelayMs, maxDelayMs, maxAttempts } = options;
  const bad = (what: string): never => {
    throw new DinferError(DinferErrorCode.INVALID_ARGUMENT, `reconnect.${what}`, { details: { ...options } });
  };
  if (!Number.isFinite(initialDelayMs) || initialDelayMs < 0) bad('initialDelayMs must be a number >= 0');
  if (!Number.isFinite(maxDelayMs) || maxDelayMs < initialDelayMs)
    bad('maxDelayMs must be >= initialDelayMs');
  if (maxAttempts !== undefined && (!Number.isInteger(maxAttempts) || maxAttempts < 1)) {
    bad('maxAttempts must be an integer >= 1');
  }
  return options;
}
