/**
 * How long a client may hold one of the master's connections, and how many it may hold:
 * a whole request (headers and body) must arrive within the body timeout (408 after, so a
 * body sent one byte every few seconds is cut off), headers within the shorter of that and
 * 10 s, an idle keep-alive connection closes after the idle timeout, and connections beyond
 * the cap are closed at once.
 *
 * @module
 */
import { DinferError, DinferErrorCode } from '@dinfer/core';
import type { FastifyInstance } from 'fastify';

/** Default time to receive a whole request, headers and body: 30 s. */
export const DEFAULT_HTTP_BODY_TIMEOUT_MS = 30_000;

/** Default time an idle keep-alive connection stays open: 5 s. */
export const DEFAULT_HTTP_IDLE_TIMEOUT_MS = 5_000;

/** Default most connections at once. */
export const DEFAULT_HTTP_MAX_CONNECTIONS = 1024;

/** Headers never get longer than this to arrive, whatever the body timeout. */
const MAX_HEADERS_TIMEOUT_MS = 10_000;

/** The limits; every one optional (defaults above). */
export interface ConnectionLimits {
  readonly bodyTimeoutMs?: number | undefined;
  readonly idleTimeoutMs?: number | undefined;
  readonly maxConnections?: number | undefined;
}

function positiveInt(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new DinferError(DinferErrorCode.INVALID_ARGUMENT, `${name} ${value} must be a positive integer`);
  }
  return value;
}

/**
 * The fastify and node:http server options that enforce `limits`.
 *
 * @throws DinferError INVALID_ARGUMENT for a limit that is not a positive integer.
 */
export function connectionServerOptions(limits: ConnectionLimits) {
  const requestTimeout = positiveInt('bodyTimeoutMs', limits.bodyTimeoutMs, DEFAULT_HTTP_BODY_TIMEOUT_MS);
  const keepAliveTimeout = positiveInt('idleTimeoutMs', limits.idleTimeoutMs, DEFAULT_HTTP_IDLE_TIMEOUT_MS);
  positiveInt('maxConnections', limits.maxConnections, DEFAULT_HTTP_MAX_CONNECTIONS);
  const headersTimeout = Math.min(requestTimeout, MAX_HEADERS_TIMEOUT_MS);
  return {
    requestTimeout,
    keepAliveTimeout,
    http: {
      requestTimeout,
      headersTimeout,
      keepAliveTimeout,
      // Node checks these timeouts on an interval (30 s by default): check often enough that
      // a trickling client is cut off close to its deadline.
      connectionsCheckingInterval: Math.max(100, Math.min(1000, Math.floor(headersTimeout / 4))),
    },
  };
}

/** Caps the connections `app`'s server accepts at once (more are closed on arrival). */
export function capConnections(app: FastifyInstance, limits: ConnectionLimits): void {
  app.server.maxConnections = limits.maxConnections ?? DEFAULT_HTTP_MAX_CONNECTIONS;
}
