/**
 * Options of {@link socketIoTransport} and their validated, defaulted form.
 *
 * @module
 */
import {
  DinferError,
  DinferErrorCode,
  type Logger,
  type Metrics,
  noopMetrics,
  silentLogger,
} from '@dinfer/core';

/** Options for `socketIoTransport`. */
export interface SocketIoTransportOptions {
  /** Shared cluster token; proves membership via HMAC challenge/response and never crosses the wire. Omit to run without authentication (the protocol version is still checked). */
  token?: string | undefined;
  /** Largest message (JSON header + attachments) accepted or sent, in bytes. Default 256 MiB. */
  maxFrameBytes?: number | undefined;
  /** Most binary attachments one message may carry. Default 256. */
  maxAttachments?: number | undefined;
  /** HTTP path of the Socket.IO endpoint, the same on both sides. Default `/socket.io`. */
  path?: string | undefined;
  /** Timeout of a request that names none, in ms. Default 30 000. */
  defaultRequestTimeoutMs?: number | undefined;
  /** Time allowed for connecting plus the challenge/response handshake, in ms. Default 10 000. */
  handshakeTimeoutMs?: number | undefined;
  /** Dialed connections redial by themselves (socket.io-client's reconnection with its backoff) and re-authenticate. Default true. */
  reconnection?: boolean | undefined;
  /** Structured logger (pino-compatible). Default: silent. */
  logger?: Logger | undefined;
  /** Metrics sink. Default: no-op. */
  metrics?: Metrics | undefined;
}

/** {@link SocketIoTransportOptions} with every default applied. */
export interface ResolvedOptions {
  readonly token: string | undefined;
  readonly maxFrameBytes: number;
  readonly maxAttachments: number;
  readonly path: string;
  readonly defaultRequestTimeoutMs: number;
  readonly handshakeTimeoutMs: number;
  readonly reconnection: boolean;
  readonly logger: Logger;
  readonly metrics: Metrics;
  /** `maxHttpBufferSize` / ws `maxPayload`: the largest single WebSocket message (one attachment, or the JSON part). */
  readonly maxWsMessageBytes: number;
}

/** Default {@link SocketIoTransportOptions.maxFrameBytes}: 256 MiB. */
export const DEFAULT_MAX_FRAME_BYTES = 256 * 1024 * 1024;
/** Default {@link SocketIoTransportOptions.maxAttachments}. */
export const DEFAULT_MAX_ATTACHMENTS = 256;
/** Default {@link SocketIoTransportOptions.defaultRequestTimeoutMs}. */
export const DEFAULT_SOCKETIO_REQUEST_TIMEOUT_MS = 30_000;
/** Default {@link SocketIoTransportOptions.handshakeTimeoutMs}. */
export const DEFAULT_SOCKETIO_HANDSHAKE_TIMEOUT_MS = 10_000;

/** Room for the socket.io packet prefix and placeholders around the largest single message. */
const WS_OVERHEAD_BYTES = 64 * 1024;

function invalid(message: string): DinferError {
  return new DinferError(DinferErrorCode.INVALID_ARGUMENT, `socketIoTransport: ${message}`);
}

function positiveInt(value: unknown, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) {
    throw invalid(`${name} must be a positive integer, got ${String(value)}`);
  }
  return value;
}

function positiveMs(value: unknown, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || Number.isNaN(value) || value <= 0 || value > 2_147_483_647) {
    throw invalid(`${name} must be a positive number of ms (at most 2^31-1), got ${String(value)}`);
  }
  return value;
}

/** Validates `options` and applies defaults; bad values throw `DINFER_ERR_INVALID_ARGUMENT`. */
export function resolveOptions(options: SocketIoTransportOptions = {}): ResolvedOptions {
  if (typeof options !== 'object' || options === null) throw invalid('options must be an object');
  const { token, path, reconnection } = options;
  if (token !== undefined && (typeof token !== 'string' || token.length === 0)) {
    throw invalid('token must be a non-empty string when given');
  }
  if (path !== undefined && (typeof path !== 'string' || !path.startsWith('/'))) {
    throw invalid(`path must be a string starting with "/", got ${String(path)}`);
  }
  if (reconnection !== undefined && typeof reconnection !== 'boolean')
    throw invalid('reconnection must be a boolean');
  const maxFrameBytes = positiveInt(options.maxFrameBytes, 'maxFrameBytes', DEFAULT_MAX_FRAME_BYTES);
  return {
    token,
    maxFrameBytes,
    maxAttachments: positiveInt(options.maxAttachments, 'maxAttachments', DEFAULT_MAX_ATTACHMENTS),
    path: path ?? '/socket.io',
    defaultRequestTimeoutMs: positiveMs(
      options.defaultRequestTimeoutMs,
      'defaultRequestTimeoutMs',
      DEFAULT_SOCKETIO_REQUEST_TIMEOUT_MS,
    ),
    handshakeTimeoutMs: positiveMs(
      options.handshakeTimeoutMs,
      'handshakeTimeoutMs',
      DEFAULT_SOCKETIO_HANDSHAKE_TIMEOUT_MS,
    ),
    reconnection: reconnection ?? true,
    logger: options.logger ?? silentLogger,
    metrics: options.metrics ?? noopMetrics,
    maxWsMessageBytes: maxFrameBytes + WS_OVERHEAD_BYTES,
  };
}
