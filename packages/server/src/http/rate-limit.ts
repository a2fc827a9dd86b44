/**
 * The rate limit of the inference routes, per client address, with `@fastify/rate-limit`:
 * past `max` requests in a window a client gets 429 `DINFER_ERR_RATE_LIMITED` with
 * `Retry-After` (and the `x-ratelimit-*` headers) until the window ends.
 *
 * @module
 */
import { DinferError, DinferErrorCode } from '@dinfer/core';
import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance, onRequestAsyncHookHandler } from 'fastify';

/** Default window of the rate limit: one second. */
export const DEFAULT_RATE_LIMIT_WINDOW_MS = 1000;

/** The limit: `max` requests per client per `windowMs`; `max` 0 switches it off. */
export interface RateLimitOptions {
  readonly max?: number | undefined;
  readonly windowMs?: number | undefined;
}

/**
 * Registers the rate limiter on `scope` (an encapsulated plugin) and returns the `onRequest`
 * hook to put on each limited route, or `undefined` when the limit is off.
 *
 * @throws DinferError INVALID_ARGUMENT for a `max` that is not an integer >= 0 or a window
 *   that is not a positive integer.
 */
export async function inferenceRateLimit(
  scope: FastifyInstance,
  options: RateLimitOptions,
): Promise<onRequestAsyncHookHandler | undefined> {
  const max = options.max ?? 0;
  const windowMs = options.windowMs ?? DEFAULT_RATE_LIMIT_WINDOW_MS;
  checkRateLimit(options);
  if (max === 0) return undefined;
  await scope.register(rateLimit, { global: false });
  return scope.rateLimit({
    max,
    timeWindow: windowMs,
    errorResponseBuilder: (_request, context) =>
      new DinferError(
        DinferErrorCode.RATE_LIMITED,
        `rate limit reached: at most ${context.max} inference requests per ${context.after} from one client`,
        { details: { retryAfterMs: context.ttl, max: context.max } },
      ),
  }) as onRequestAsyncHookHandler;
}

/**
 * Checks the rate limit options.
 *
 * @throws DinferError INVALID_ARGUMENT as {@link inferenceRateLimit} does.
 */
export function checkRateLimit(options: RateLimitOptions): void {
  const { max, windowMs } = options;
  if (max !== undefined && (!Number.isSafeInteger(max) || max < 0)) {
    throw new DinferError(
      DinferErrorCode.INVALID_ARGUMENT,
      `rateLimit ${max} must be an integer >= 0 (0: off)`,
    );
  }
  if (windowMs !== undefined && (!Number.isSafeInteger(windowMs) || windowMs < 1)) {
    throw new DinferError(
      DinferErrorCode.INVALID_ARGUMENT,
      `rateLimitWindowMs ${windowMs} must be a positive integer`,
    );
  }
}
