/**
 * Opens one raw channel: TCP (or TLS) connect with a timeout, socket tuning, and the frame
 * channel on top. Core's upgrader authenticates it.
 *
 * @module
 */
import { isIP, connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { DinferError, DinferErrorCode, PRE_AUTH_MAX_FRAME_BYTES } from '@dinfer/core';
import type { TcpAddress } from './address.js';
import type { ResolvedTcpOptions } from './options.js';
import { type SocketChannel, socketChannel } from './socket-channel.js';

/** Applies the per-socket settings every tcpTransport socket gets. */
export function tuneSocket(socket: Socket, options: ResolvedTcpOptions): void {
  socket.setNoDelay(true);
  if (options.keepAliveMs > 0) socket.setKeepAlive(true, options.keepAliveMs);
}

/** Connects a socket (TLS when configured) and resolves once it is ready for bytes. */
function connectSocket(
  address: TcpAddress,
  text: string,
  options: ResolvedTcpOptions,
  signal?: AbortSignal,
): Promise<Socket> {
  return new Promise<Socket>((resolve, reject) => {
    if (signal?.aborted) {
      reject(new DinferError(DinferErrorCode.ABORTED, `dial ${text} aborted`, { cause: signal.reason }));
      return;
    }
    const tls = options.tls;
    const socket: Socket =
      tls === undefined
        ? netConnect({ host: address.host, port: address.port })
        : tlsConnect({
            host: address.host,
            port: address.port,
            ...(isIP(address.host) === 0 ? { servername: address.host } : {}),
            ...(tls.ca === undefined ? {} : { ca: tls.ca }),
            ...(tls.key === undefined ? {} : { key: tls.key }),
            ...(tls.cert === undefined ? {} : { cert: tls.cert }),
            rejectUnauthorized: tls.rejectUnauthorized ?? true,
          });
    const readyEvent = tls === undefined ? 'connect' : 'secureConnect';
    let settled = false;
    const finish = (error?: DinferError): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      socket.off(readyEvent, onReady);
      socket.off('error', onError);
      if (error === undefined) {
        resolve(socket);
      } else {
        socket.destroy();
        reject(error);
      }
    };
    const onReady = (): void => finish();
    const onError = (error: Error): void =>
      finish(
        new DinferError(DinferErrorCode.TRANSPORT_CONNECT, `could not connect to ${text}: ${error.message}`, {
          cause: error,
          details: { address: text },
        }),
      );
    const onAbort = (): void =>
      finish(new DinferError(DinferErrorCode.ABORTED, `dial ${text} aborted`, { cause: signal?.reason }));
    const timer = setTimeout(
      () =>
        finish(
          new DinferError(
            DinferErrorCode.TRANSPORT_CONNECT,
            `could not connect to ${text}: timed out after ${options.connectTimeoutMs} ms`,
            { details: { address: text, timeoutMs: options.connectTimeoutMs } },
          ),
        ),
      options.connectTimeoutMs,
    );
    socket.once(readyEvent, onReady);
    socket.once('error', onError);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Dials `address` and resolves with a raw {@link SocketChannel} that accepts frames of at
 * most 64 KiB until the upgrader raises its limit.
 *
 * @throws DinferError `TRANSPORT_CONNECT` (refused, unreachable, TLS verification, timeout) or `ABORTED`.
 */
export async function dialChannel(
  address: TcpAddress,
  text: string,
  options: ResolvedTcpOptions,
  signal?: AbortSignal,
): Promise<SocketChannel> {
  const socket = await connectSocket(address, text, options, signal);
  tuneSocket(socket, options);
  return socketChannel(socket, {
    maxFrameBytes: options.maxFrameBytes,
    incomingMaxFrameBytes: PRE_AUTH_MAX_FRAME_BYTES,
    remoteAddress: text,
    logger: options.logger,
    metrics: options.metrics,
  });
}
