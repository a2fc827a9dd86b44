/**
 * Options both ends of core's upgrader take (`listenForConnections`, `dialConnection`), and
 * their validation.
 *
 * @module
 */
import { DinferError, DinferErrorCode } from '../errors.js';
import { type Logger, silentLogger } from '../logger.js';
import { type Metrics, noopMetrics } from '../metrics.js';
import { isTransport, type Transport } from '../transport.js';
import { DEFAULT_HANDSHAKE_TIMEOUT_MS } from './authenticate.js';
import { DEFAULT_REQUEST_TIMEOUT_MS, type RpcConnectionOptions } from './rpc-connection.js';

/** How connections are authenticated and run, on either side. */
export interface ConnectionOptions {
  /**
   * The cluster token both sides must hold (HMAC challenge/response; it never crosses the
   * wire). `undefined` runs without authentication; the protocol version is still checked.
   */
  readonly token?: string | undefined;
  /**
   * Time allowed for the handshake, in ms. A listener closes a channel that has not
   * authenticated in time, so idle or trickling peers cannot pile up. Default 10 000.
   */
  readonly handshakeTimeoutMs?: number | undefined;
  /** Timeout of requests that name none, in ms. Default 30 000. */
  readonly requestTimeoutMs?: number | undefined;
  /** Incoming requests and messages held while no handler is installed. Default 1024. */
  readonly maxQueued?: number | undefined;
  /** Handshake failures, protocol errors, drops and redials. Default silent. */
  readonly logger?: Logger | undefined;
  /** The `dinfer_transport_*` metrics, labelled with the transport's name. Default no-op. */
  readonly metrics?: Metrics | undefined;
}

/** {@link ConnectionOptions} checked, with defaults applied. */
export interface ResolvedConnectionOptions {
  readonly token: string | undefined;
  readonly handshakeTimeoutMs: number;
  readonly logger: Logger;
  readonly metrics: Metrics;
  /** What every {@link RpcConnection} of this transport gets. */
  readonly engine: RpcConnectionOptions;
}

function positive(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || Number.isNaN(value) || value <= 0) {
    throw new DinferError(DinferErrorCode.INVALID_ARGUMENT, `${name} must be a positive number of ms`, {
      details: { [name]: value },
    });
  }
  return value;
}

/**
 * Checks `transport` and `options` and applies the defaults.
 *
 * @throws DinferError `INVALID_ARGUMENT`.
 */
export function resolveConnectionOptions(
  transport: Transport,
  options: ConnectionOptions,
): ResolvedConnectionOptions {
  if (!isTransport(transport)) {
    throw new DinferError(DinferErrorCode.INVALID_ARGUMENT, 'expected a dinfer Transport (isTransport)');
  }
  const token = options.token;
  if (token !== undefined && (typeof token !== 'string' || token.length === 0)) {
    throw new DinferError(DinferErrorCode.INVALID_ARGUMENT, 'token must be a non-empty string when given');
  }
  const maxQueued = options.maxQueued;
  if (maxQueued !== undefined && (!Number.isSafeInteger(maxQueued) || maxQueued < 0)) {
    throw new DinferError(DinferErrorCode.INVALID_ARGUMENT, 'maxQueued must be an integer >= 0');
  }
  const logger = options.logger ?? silentLogger;
  const metrics = options.metrics ?? noopMetrics;
  return {
    token,
    handshakeTimeoutMs: positive(
      'handshakeTimeoutMs',
      options.handshakeTimeoutMs,
      DEFAULT_HANDSHAKE_TIMEOUT_MS,
    ),
    logger,
    metrics,
    engine: {
      transport: transport.name,
      defaultTimeoutMs: positive('requestTimeoutMs', options.requestTimeoutMs, DEFAULT_REQUEST_TIMEOUT_MS),
      maxQueued,
      logger,
      metrics,
    },
  };
}
