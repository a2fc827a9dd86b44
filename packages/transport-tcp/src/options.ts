/**
 * Options of {@link tcpTransport}, their defaults and validation.
 *
 * @module
 */
import {
  DEFAULT_MAX_FRAME_BYTES,
  DinferError,
  DinferErrorCode,
  type Logger,
  type Metrics,
  noopMetrics,
  silentLogger,
  type TransportComponents,
} from '@dinfer/core';
import { checkReconnectOptions, type ReconnectOptions } from './backoff.js';

/** TLS material. The listener presents `key` + `cert`; the dialer verifies the listener against `ca`. */
export interface TcpTlsOptions {
  /** PEM private key of this side's certificate (required to listen). */
  key?: string | Buffer | undefined;
  /** PEM certificate (chain) presented by the listener (required to listen). */
  cert?: string | Buffer | undefined;
  /** PEM CA certificate(s) trusted when dialing; default: Node's built-in root CAs. */
  ca?: string | Buffer | Array<string | Buffer> | undefined;
  /** Verify the listener's certificate when dialing. Default `true`; turn off only for tests. */
  rejectUnauthorized?: boolean | undefined;
}

/** Options of {@link tcpTransport}. */
export interface TcpTransportOptions extends TransportComponents {
  /** Shared cluster token for the challenge/response handshake; `undefined` runs without one. */
  token?: string | undefined;
  /** Largest frame (header + attachments) sent or accepted after authentication. Default 256 MiB. */
  maxFrameBytes?: number | undefined;
  /** Use TLS instead of plain TCP. */
  tls?: TcpTlsOptions | undefined;
  /** TCP keep-alive initial delay in ms; `0` turns keep-alive off. Default 10 000. */
  keepAliveMs?: number | undefined;
  /** Dial (TCP connect + TLS) timeout in ms. Default 10 000. */
  connectTimeoutMs?: number | undefined;
  /**
   * Time allowed for the authentication handshake (both sides) in ms. A listener closes a
   * connection that has not authenticated in time, so idle or trickling sockets cannot pile
   * up. Default 10 000.
   */
  handshakeTimeoutMs?: number | undefined;
  /** Timeout of requests that name none, in ms. Default 30 000. */
  defaultRequestTimeoutMs?: number | undefined;
  /**
   * Redial a dialed connection transparently when its link drops (see the README for the
   * exact semantics). Off by default.
   */
  reconnect?: ReconnectOptions | false | undefined;
  /**
   * Share connections per peer address: every `dial` of the same address returns a handle on
   * one pool of `poolSize` sockets, and requests are spread over them round-robin. The pool
   * closes when its last handle closes. Default: no pooling (one socket per `dial`).
   */
  poolSize?: number | undefined;
}

/** Largest frame accepted before the peer has authenticated: handshake messages are tiny. */
export const HANDSHAKE_MAX_FRAME_BYTES = 64 * 1024;

/** Options with defaults applied. */
export interface ResolvedTcpOptions {
  readonly token: string | undefined;
  readonly maxFrameBytes: number;
  readonly tls: TcpTlsOptions | undefined;
  readonly keepAliveMs: number;
  readonly connectTimeoutMs: number;
  readonly handshakeTimeoutMs: number;
  readonly defaultRequestTimeoutMs: number;
  readonly reconnect: ReconnectOptions | undefined;
  readonly poolSize: number | undefined;
  readonly logger: Logger;
  readonly metrics: Metrics;
}

function positive(name: string, value: number | undefined, fallback: number, allowZero = false): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || Number.isNaN(value) || value < 0 || (!allowZero && value === 0)) {
    throw new DinferError(
      DinferErrorCode.INVALID_ARGUMENT,
      `tcpTransport: ${name} must be a positive number`,
      {
        details: { [name]: value },
      },
    );
  }
  return value;
}

/** Applies defaults and validates. @throws DinferError `INVALID_ARGUMENT`. */
export function resolveTcpOptions(options: TcpTransportOptions): ResolvedTcpOptions {
  const maxFrameBytes = positive('maxFrameBytes', options.maxFrameBytes, DEFAULT_MAX_FRAME_BYTES);
  if (!Number.isInteger(maxFrameBytes) || maxFrameBytes < 1024 || maxFrameBytes > 0xffff_ffff) {
    throw new DinferError(
      DinferErrorCode.INVALID_ARGUMENT,
      'tcpTransport: maxFrameBytes must be an integer in [1024, 2^32-1]',
    );
  }
  const poolSize = options.poolSize;
  if (poolSize !== undefined && (!Number.isInteger(poolSize) || poolSize < 1 || poolSize > 64)) {
    throw new DinferError(
      DinferErrorCode.INVALID_ARGUMENT,
      'tcpTransport: poolSize must be an integer in [1, 64]',
      {
        details: { poolSize },
      },
    );
  }
  if (options.token !== undefined && (typeof options.token !== 'string' || options.token.length === 0)) {
    throw new DinferError(DinferErrorCode.INVALID_ARGUMENT, 'tcpTransport: token must be a non-empty string');
  }
  return {
    token: options.token,
    maxFrameBytes,
    tls: options.tls,
    keepAliveMs: positive('keepAliveMs', options.keepAliveMs, 10_000, true),
    connectTimeoutMs: positive('connectTimeoutMs', options.connectTimeoutMs, 10_000),
    handshakeTimeoutMs: positive('handshakeTimeoutMs', options.handshakeTimeoutMs, 10_000),
    defaultRequestTimeoutMs: positive('defaultRequestTimeoutMs', options.defaultRequestTimeoutMs, 30_000),
    reconnect: options.reconnect ? checkReconnectOptions(options.reconnect) : undefined,
    poolSize,
    logger: options.logger ?? silentLogger,
    metrics: options.metrics ?? noopMetrics,
  };
}
