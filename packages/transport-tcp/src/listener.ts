/**
 * The accepting side: a `net` (or `tls`) server handing every socket out as a raw frame
 * channel, with a small frame limit until core's upgrader has authenticated the peer.
 *
 * @module
 */
import { type AddressInfo, createServer as createNetServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import {
  DinferError,
  DinferErrorCode,
  type FrameChannel,
  type Listener,
  PRE_AUTH_MAX_FRAME_BYTES,
} from '@dinfer/core';
import { formatTcpAddress, type TcpAddress } from './address.js';
import { tuneSocket } from './dial.js';
import type { ResolvedTcpOptions } from './options.js';
import { type SocketChannel, socketChannel } from './socket-channel.js';

const LABELS = { transport: 'tcp' };

/** How long `close()` lets accepted sockets end gracefully before destroying them. */
const CLOSE_GRACE_MS = 2000;

/**
 * Starts listening on `address`; every accepted socket goes to `onChannel` as a channel.
 *
 * @throws DinferError `TRANSPORT_CONNECT` when the address cannot be bound,
 *   `INVALID_ARGUMENT` when TLS is configured without key and certificate, `ABORTED`.
 */
export async function startListener(
  address: TcpAddress,
  options: ResolvedTcpOptions,
  onChannel: (channel: FrameChannel) => void,
  signal?: AbortSignal,
): Promise<Listener> {
  const listener = new TcpListener(options, onChannel);
  await listener.start(address, signal);
  return listener;
}

class TcpListener implements Listener {
  readonly #options: ResolvedTcpOptions;
  readonly #onChannel: (channel: FrameChannel) => void;
  readonly #server: Server;
  readonly #channels = new Set<SocketChannel>();
  readonly #sockets = new Set<Socket>();
  #address = '';
  #closing: Promise<void> | undefined;

  constructor(options: ResolvedTcpOptions, onChannel: (channel: FrameChannel) => void) {
    this.#options = options;
    this.#onChannel = onChannel;
    const tls = options.tls;
    if (tls === undefined) {
      this.#server = createNetServer((socket) => this.#accept(socket));
    } else {
      if (tls.key === undefined || tls.cert === undefined) {
        throw new DinferError(
          DinferErrorCode.INVALID_ARGUMENT,
          'tcpTransport: listening with TLS needs tls.key and tls.cert',
        );
      }
      const server = createTlsServer(
        {
          key: tls.key,
          cert: tls.cert,
          ...(tls.ca === undefined ? {} : { ca: tls.ca }),
          handshakeTimeout: options.connectTimeoutMs,
        },
        (socket) => this.#accept(socket),
      );
      server.on('tlsClientError', (error, socket) => {
        options.metrics.increment('dinfer_transport_handshake_failures_total', { ...LABELS, code: 'TLS' });
        options.logger.debug(
          { err: error.message, remoteAddress: socket.remoteAddress },
          'TLS handshake failed',
        );
      });
      this.#server = server;
    }
    this.#server.on('error', (error) => options.logger.error({ err: error.message }, 'tcp listener error'));
    // Every raw TCP socket, so close() can cut off those stuck before or during a TLS handshake.
    this.#server.on('connection', (socket: Socket) => {
      this.#sockets.add(socket);
      socket.once('close', () => this.#sockets.delete(socket));
    });
  }

  get address(): string {
    return this.#address;
  }

  start(address: TcpAddress, signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (signal?.aborted) {
        reject(new DinferError(DinferErrorCode.ABORTED, 'listen aborted', { cause: signal.reason }));
        return;
      }
      const onError = (error: Error): void => {
        signal?.removeEventListener('abort', onAbort);
        reject(
          new DinferError(
            DinferErrorCode.TRANSPORT_CONNECT,
            `could not listen on ${formatTcpAddress(address)}: ${error.message}`,
            { cause: error, details: { address: formatTcpAddress(address) } },
          ),
        );
      };
      const onAbort = (): void => {
        this.#server.off('error', onError);
        this.#server.close();
        reject(new DinferError(DinferErrorCode.ABORTED, 'listen aborted', { cause: signal?.reason }));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#server.once('error', onError);
      this.#server.listen({ host: address.host, port: address.port }, () => {
        this.#server.off('error', onError);
        signal?.removeEventListener('abort', onAbort);
        const bound = this.#server.address() as AddressInfo;
        this.#address = formatTcpAddress({ host: bound.address, port: bound.port });
        this.#options.logger.info(
          { address: this.#address, tls: this.#options.tls !== undefined },
          'tcp listening',
        );
        resolve();
      });
    });
  }

  #accept(socket: Socket): void {
    const options = this.#options;
    if (this.#closing !== undefined) {
      socket.destroy();
      return;
    }
    tuneSocket(socket, options);
    const channel = socketChannel(socket, {
      maxFrameBytes: options.maxFrameBytes,
      incomingMaxFrameBytes: PRE_AUTH_MAX_FRAME_BYTES,
      logger: options.logger,
      metrics: options.metrics,
    });
    this.#channels.add(channel);
    channel.onClose(() => this.#channels.delete(channel));
    try {
      this.#onChannel(channel);
    } catch (error) {
      options.logger.error({ err: String(error), remoteAddress: channel.remoteAddress }, 'onChannel threw');
      channel.close();
    }
  }

  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    const stopped = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    for (const channel of this.#channels) {
      channel.close(new DinferError(DinferErrorCode.TRANSPORT_CLOSED, `listener ${this.#address} closed`));
    }
    // Closed channels end gracefully; whatever has not gone after the grace time is cut.
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      stopped,
      new Promise<void>((resolve) => (timer = setTimeout(resolve, CLOSE_GRACE_MS))),
    ]);
    clearTimeout(timer);
    for (const socket of this.#sockets) socket.destroy();
    await stopped;
    this.#options.logger.info({ address: this.#address }, 'tcp listener closed');
  }
}
