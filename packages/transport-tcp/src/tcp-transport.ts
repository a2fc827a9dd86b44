/**
 * The TCP transport: length-prefixed binary frames over `net` or `tls` sockets.
 *
 * @module
 */
import {
  type DialOptions,
  type FrameChannel,
  type Listener,
  type ListenOptions,
  type Transport,
  type TransportCapabilities,
  transportSymbol,
} from '@dinfer/core';
import { formatTcpAddress, parseTcpAddress } from './address.js';
import { dialChannel } from './dial.js';
import { startListener } from './listener.js';
import { type ResolvedTcpOptions, resolveTcpOptions, type TcpTransportOptions } from './options.js';

/**
 * Creates a TCP (or TLS) {@link Transport}: raw frame channels, which core's upgrader
 * (`listenForConnections`, `dialConnection`) authenticates and runs.
 *
 * Addresses are `host:port` or `[ipv6]:port`; listening on port 0 binds a free port, which
 * `listener.address` reports. Every channel accepts frames of at most 64 KiB until the
 * upgrader has authenticated the peer. See {@link TcpTransportOptions} for TLS and keep-alive.
 *
 * @example
 * ```ts
 * const transport = tcpTransport();
 * const token = process.env.DINFER_TOKEN;
 * const listener = await listenForConnections(transport, '127.0.0.1:0', {
 *   token,
 *   onConnection: (connection) =>
 *     connection.onRequest(async (request) => ({ header: { type: 'pong' }, attachments: request.attachments })),
 * });
 * const connection = await dialConnection(transport, listener.address, { token });
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

  constructor(options: ResolvedTcpOptions) {
    this.#options = options;
    this.capabilities = { maxFrameBytes: options.maxFrameBytes };
  }

  listen(
    address: string,
    onChannel: (channel: FrameChannel) => void,
    options: ListenOptions = {},
  ): Promise<Listener> {
    return startListener(parseTcpAddress(address), this.#options, onChannel, options.signal);
  }

  async dial(address: string, options: DialOptions = {}): Promise<FrameChannel> {
    const parsed = parseTcpAddress(address);
    return dialChannel(parsed, formatTcpAddress(parsed), this.#options, options.signal);
  }
}
