/**
 * The one table that maps dinfer error codes to HTTP statuses, and the conversion of any
 * thrown value into a JSON error answer (`{"error": "...", "code": "..."}`, never a stack).
 *
 * @module
 */
import { DinferErrorCode, isDinferError } from '@dinfer/core';

/** HTTP status for each dinfer error code that is not a server fault; every other code is 500. */
export const HTTP_STATUS_BY_ERROR_CODE: Readonly<Partial<Record<DinferErrorCode, number>>> = {
  [DinferErrorCode.INVALID_ARGUMENT]: 400,
  [DinferErrorCode.TENSOR_INVALID]: 400,
  [DinferErrorCode.AUTH_FAILED]: 401, // with a `WWW-Authenticate` challenge
  [DinferErrorCode.FORBIDDEN]: 403,
  [DinferErrorCode.UNKNOWN_MODEL]: 404,
  [DinferErrorCode.ROLLOUT_FAILED]: 422, // the version cannot serve; the previous one still does
  [DinferErrorCode.RATE_LIMITED]: 429, // with `Retry-After`
  [DinferErrorCode.OVERLOADED]: 503,
  [DinferErrorCode.NO_WORKER]: 503,
  [DinferErrorCode.NOT_READY]: 503,
  [DinferErrorCode.TIMEOUT]: 504,
};

/** Seconds a client is told to wait (`Retry-After`) on a 503 when the error does not say. */
export const DEFAULT_RETRY_AFTER_SECONDS = 1;

/** The JSON body of an error answer. */
export interface HttpErrorBody {
  readonly error: string;
  /** The dinfer or fastify error code, when there is one. */
  readonly code?: string;
}

/** An error answer: status, body and extra headers. */
export interface HttpErrorResponse {
  readonly status: number;
  readonly body: HttpErrorBody;
  readonly headers: Readonly<Record<string, string>>;
}

/** Whole seconds to wait, from `details.retryAfterMs` / `details.retryAfterSeconds`, at least 1. */
function retryAfter(details: Record<string, unknown>): number {
  const ms = details.retryAfterMs;
  const s = details.retryAfterSeconds;
  const seconds =
    typeof s === 'number' && Number.isFinite(s)
      ? s
      : typeof ms === 'number' && Number.isFinite(ms)
        ? ms / 1000
        : DEFAULT_RETRY_AFTER_SECONDS;
  return Math.max(1, Math.ceil(seconds));
}

/**
 * Converts anything thrown while serving a request into an HTTP error answer.
 * - `DinferError`: status from {@link HTTP_STATUS_BY_ERROR_CODE} (500 otherwise); a 503 or
 *   429 carries `Retry-After`, a 401 the `WWW-Authenticate` challenge of `details.challenge`.
 * - An error with a 4xx/5xx `statusCode` (fastify's own, e.g. 413 body too large or 400 bad
 *   JSON): that status and its message.
 * - Anything else: 500 with the error's message.
 */
export function errorToHttp(error: unknown): HttpErrorResponse {
  if (isDinferError(error)) {
    const status = HTTP_STATUS_BY_ERROR_CODE[error.code] ?? 500;
    const headers: Record<string, string> = {};
    if (status === 503 || status === 429) headers['retry-after'] = String(retryAfter(error.details));
    const challenge = error.details.challenge;
    if (status === 401) headers['www-authenticate'] = typeof challenge === 'string' ? challenge : 'Bearer';
    return { status, body: { error: error.message, code: error.code }, headers };
  }
  if (typeof error === 'object' && error !== null) {
    const e = error as { statusCode?: unknown; message?: unknown; code?: unknown };
    const message = typeof e.message === 'string' && e.message.length > 0 ? e.message : 'internal error';
    const code = typeof e.code === 'string' ? { code: e.code } : {};
    if (
      typeof e.statusCode === 'number' &&
      Number.isInteger(e.statusCode) &&
      e.statusCode >= 400 &&
      e.statusCode <= 599
    ) {
      return { status: e.statusCode, body: { error: message, ...code }, headers: {} };
    }
    return { status: 500, body: { error: message, ...code }, headers: {} };
  }
  return { status: 500, body: { error: 'internal error' }, headers: {} };
}
