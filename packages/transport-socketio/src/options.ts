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
  type TransportComponents,
} from '@dinfer/core';
import { SOCKETIO_PIECE_BYTES } from './events.js';

/**
 * Options for `socketIoTransport`. Authentication, request timeouts, reconnection and pooling
 * are not transport options: core's `listenForConnections` / `dialConnection` take them.
 */
export interface SocketIoTransportOptions extends TransportComponents {
  /** Largest message (JSON header + attachments) sent, and accepted after authentication, in bytes. Default 256 MiB. */
  maxFrameBytes?: number | undefined;
  /** HTTP path of the Socket.IO endpoint, the same on both sides. Default `/socket.io`. */
  path?: string | undefined;
  /**
   * Time allowed to connect (WebSocket upgrade and socket.io namespace), in ms. Default 10 000.
   */
  connectTimeoutMs?: number | undefined;
  /**
   * Listening side: browser origins allowed to connect (the `Origin` header of the WebSocket
   * upgrade), e.g. `['https://app.example.org']`. A request with an `Origin` not listed is
   * refused; requests without one (Node peers) are not affected. Default: none.
   */
  cors?: readonly string[] | undefined;
}

/** {@link SocketIoTransportOptions} with every default applied. */
export interface ResolvedOptions {
  readonly maxFrameBytes: number;
  readonly path: string;
  readonly connectTimeoutMs: number;
  readonly cors: readonly string[];
  readonly logger: Logger;
  readonly metrics: Metrics;
  /** `maxHttpBufferSize` / ws `maxPayload`: the largest single WebSocket message (one piece). */
  readonly maxWsMessageBytes: number;
}

/** Default {@link SocketIoTransportOptions.maxFrameBytes}: 256 MiB. */
export const DEFAULT_MAX_FRAME_BYTES = 256 * 1024 * 1024;
/** Default {@link SocketIoTransportOptions.connectTimeoutMs}. */
export const DEFAULT_SOCKETIO_CONNECT_TIMEOUT_MS = 10_000;

/** Room for socket.io's packet framing around the largest piece. */
const WS_OVERHEAD_BYTES = 1024;

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
  const { path, cors } = options;
  if (path !== undefined && (typeof path !== 'string' || !path.startsWith('/'))) {
    throw invalid(`path must be a string starting with "/", got ${String(path)}`);
  }
  if (
    cors !== undefined &&
    (!Array.isArray(cors) || !cors.every((o) => typeof o === 'string' && o.length > 0))
  ) {
    throw invalid('cors must be a list of origins, e.g. ["https://app.example.org"]');
  }
  return {
    maxFrameBytes: positiveInt(options.maxFrameBytes, 'maxFrameBytes', DEFAULT_MAX_FRAME_BYTES),
    path: path ?? '/socket.io',
    connectTimeoutMs: positiveMs(
      options.connectTimeoutMs,
      'connectTimeoutMs',
      DEFAULT_SOCKETIO_CONNECT_TIMEOUT_MS,
    ),
    cors: cors ?? [],
    logger: options.logger ?? silentLogger,
    metrics: options.metrics ?? noopMetrics,
    maxWsMessageBytes: SOCKETIO_PIECE_BYTES + WS_OVERHEAD_BYTES,
  };
}
