/**
 * The TCP transport: length-prefixed binary frames over `net` or `tls` sockets.
 *
 * @module
 */
import {
  type Connection,
  type DialOptions,
  type Listener,
  type ListenOptions,
  type Transport,
  type TransportCapabilities,
  transportSymbol,
} from '@dinfer/core';
import { formatTcpAddress, parseTcpAddress } from './address.js';
import { dialConnection } from './dial.js';
import { startListener } from './listener.js';
import { type ResolvedTcpOptions, resolveTcpOptions, type TcpTransportOptions } from './options.js';
import { PeerPool } from './peer-pool.js';

/**
 * Creates a TCP (or TLS) {@link Transport}.
 *
 * Addresses are `host:port` or `[ipv6]:port`; listening on port 0 binds a free port, which
 * `listener.address` reports. Every connection authenticates with the cluster `token` before
 * anything else, within `handshakeTimeoutMs`, and frames above 64 KiB are refused until it
 * has. See {@link TcpTransportOptions} for TLS, keep-alive, reconnect and pooling.
 *
 * @example
 * ```ts
 * const transport = tcpTransport({ token: process.env.DINFER_TOKEN });
 * const listener = await transport.listen('127.0.0.1:0', (connection) => {
 *   connection.onRequest(async (request) => ({ header: { type: 'pong' }, attachments: request.attachments }));
 * });
 * const connection = await transport.dial(listener.address);
 * const reply = await connection.request({ header: { type: 'ping' }, attachments: [new Uint8Array(8)] });
 * ```
 *
 * @throws DinferError `INVALID_ARGUMENT` for invalid options.
 */
export function tcpTransport(options: TcpTransportOptions = {}): Transport {
  return new TcpTransport(resolveTcpOptions(options));
}

class TcpTransport implements Transport {
  readonly [transportSymbol] = true as const;
  readonly name = 'tcp';
  readonly capabilities: TransportCapabilities;
  readonly #options: ResolvedTcpOptions;
  /** Shared pools by normalised peer address (only when `poolSize` is set). */
  readonly #pools = new Map<string, Promise<PeerPool>>();

  constructor(options: ResolvedTcpOptions) {
    this.#options = options;
    this.capabilities = { reconnects: options.reconnect !== undefined, maxFrameBytes: options.maxFrameBytes };
  }

  listen(
    address: string,
    onConnection: (connection: Connection) => void,
    options: ListenOptions = {},
  ): Promise<Listener> {
    return startListener(parseTcpAddress(address), this.#options, onConnection, options.signal);
  }

  async dial(address: string, options: DialOptions = {}): Promise<Connection> {
    const parsed = parseTcpAddress(address);
    const text = formatTcpAddress(parsed);
    const resolved = this.#options;
    const dialLink = (signal: AbortSignal): Promise<Connection> =>
      dialConnection(parsed, text, resolved, signal);
    if (resolved.poolSize === undefined) {
      if (resolved.reconnect === undefined) return dialConnection(parsed, text, resolved, options.signal);
      const pool = new PeerPool(text, 1, dialLink, resolved);
      await pool.start(options.signal);
      return pool.acquire();
    }
    const existing = this.#pools.get(text);
    if (existing !== undefined) {
      const pool = await existing;
      if (!pool.isClosed) return pool.acquire();
    }
    const pool = new PeerPool(text, resolved.poolSize, dialLink, resolved);
    const started = pool.start(options.signal).then(() => pool);
    this.#pools.set(text, started);
    pool.onClosed = () => {
      if (this.#pools.get(text) === started) this.#pools.delete(text);
    };
    try {
      await started;
    } catch (error) {
      if (this.#pools.get(text) === started) this.#pools.delete(text);
      throw error;
    }
    return pool.acquire();
  }
}
