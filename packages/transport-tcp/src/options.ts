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

/**
 * Options of {@link tcpTransport}. Authentication, request timeouts, reconnection and pooling
 * are not transport options: core's `listenForConnections` / `dialConnection` take them.
 */
export interface TcpTransportOptions extends TransportComponents {
  /** Largest frame (header + attachments) sent, and accepted after authentication. Default 256 MiB. */
  maxFrameBytes?: number | undefined;
  /** Use TLS instead of plain TCP. */
  tls?: TcpTlsOptions | undefined;
  /** TCP keep-alive initial delay in ms; `0` turns keep-alive off. Default 10 000. */
  keepAliveMs?: number | undefined;
  /**
   * Time allowed to connect, in ms: the TCP connect plus the TLS handshake when dialing, and
   * the TLS handshake of an accepted socket. Default 10 000.
   */
  connectTimeoutMs?: number | undefined;
}

/** Options with defaults applied. */
export interface ResolvedTcpOptions {
  readonly maxFrameBytes: number;
  readonly tls: TcpTlsOptions | undefined;
  readonly keepAliveMs: number;
  readonly connectTimeoutMs: number;
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
  return {
    maxFrameBytes,
    tls: options.tls,
    keepAliveMs: positive('keepAliveMs', options.keepAliveMs, 10_000, true),
    connectTimeoutMs: positive('connectTimeoutMs', options.connectTimeoutMs, 10_000),
    logger: options.logger ?? silentLogger,
    metrics: options.metrics ?? noopMetrics,
  };
}
