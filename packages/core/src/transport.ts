/**
 * The Transport extension point: how bytes move between the master and its workers.
 *
 * A transport only provides raw, ordered channels of envelopes ({@link FrameChannel}): it
 * listens on an address and hands out every channel a peer opens, and it dials addresses.
 * Everything above (the cluster-token handshake, requests and replies, timeouts,
 * cancellation, reconnection, pooling, metrics) is core's upgrader: `listenForConnections`
 * and `dialConnection` turn a transport's channels into {@link Connection}s. A third-party
 * transport implements these interfaces and proves itself with `transportSuite` from
 * `@dinfer/core/testing`.
 *
 * @module
 */
import type { Connection } from './connection/connection.js';
import type { FrameChannel } from './connection/frame-channel.js';
import type { Logger } from './logger.js';
import type { Metrics } from './metrics.js';

/** Brand that marks an object as a dinfer Transport (shared across duplicate installs). */
export const transportSymbol: unique symbol = Symbol.for('@dinfer/transport') as never;

/**
 * One message on the wire: a small JSON header and zero or more binary attachments.
 * The header is a discriminated union on `type` (see `protocol/messages.ts`); transports
 * treat it as opaque JSON and never evaluate it.
 */
export interface Envelope {
  /** JSON-serialisable header; `type` discriminates the message kind. */
  readonly header: MessageHeader;
  /** Raw binary attachments, e.g. tensor bytes. Sent as-is, never JSON-encoded. */
  readonly attachments: readonly Uint8Array[];
}

/** The minimum every header carries. */
export interface MessageHeader {
  readonly type: string;
  readonly [key: string]: unknown;
}

/** A listening endpoint (of a transport, or of core's upgrader on top of one). */
export interface Listener {
  /** The address actually bound (with the real port when 0 was asked for), dialable by peers. */
  readonly address: string;
  /** Stops accepting and closes every channel (or {@link Connection}) it accepted. */
  close(): Promise<void>;
}

/** Options for {@link Transport.listen}. */
export interface ListenOptions {
  signal?: AbortSignal | undefined;
}

/** Options for {@link Transport.dial}. */
export interface DialOptions {
  signal?: AbortSignal | undefined;
}

/** Collaborators injected into every transport factory. */
export interface TransportComponents {
  logger?: Logger | undefined;
  metrics?: Metrics | undefined;
}

/** What a transport implementation declares about itself. */
export interface TransportCapabilities {
  /**
   * Largest frame (header + attachments) the transport sends, and accepts once the upgrader
   * has raised a channel's limit after authentication, in bytes.
   */
  readonly maxFrameBytes: number;
}

/**
 * The transport extension point. Create implementations through factories
 * (`tcpTransport(options)`); check foreign objects with {@link isTransport}.
 */
export interface Transport {
  readonly [transportSymbol]: true;
  /** Short name for logs and metrics, e.g. `tcp`. */
  readonly name: string;
  /** What this transport claims to support. */
  readonly capabilities: TransportCapabilities;
  /**
   * Listens on `address` (`host:port`, or a transport-specific form); `onChannel` gets every
   * channel a peer opens, unauthenticated, its incoming limit at `PRE_AUTH_MAX_FRAME_BYTES`.
   */
  listen(
    address: string,
    onChannel: (channel: FrameChannel) => void,
    options?: ListenOptions,
  ): Promise<Listener>;
  /** Dials `address` and resolves with a raw channel (incoming limit `PRE_AUTH_MAX_FRAME_BYTES`). */
  dial(address: string, options?: DialOptions): Promise<FrameChannel>;
}

/** True when `value` is a dinfer {@link Transport}, even from another copy of this package. */
export function isTransport(value: unknown): value is Transport {
  return (
    typeof value === 'object' &&
    value !== null &&
    (value as Record<symbol, unknown>)[transportSymbol] === true
  );
}
