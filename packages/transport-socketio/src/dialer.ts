/**
 * The dialing side: a socket.io-client socket (WebSocket only, its own manager, no
 * reconnection of its own: core's upgrader redials) handed out as a raw channel once
 * socket.io has connected.
 *
 * @module
 */
import { DinferError, DinferErrorCode, type FrameChannel, PROTOCOL_VERSION } from '@dinfer/core';
import { io, type ManagerOptions, type SocketOptions } from 'socket.io-client';
import { formatAddress, parseAddress } from './address.js';
import { SocketIoChannel } from './channel.js';
import { type SocketIoAuthPayload, SocketIoEvent } from './events.js';
import { whenWritable } from './flow.js';
import { linkError } from './link-error.js';
import type { ResolvedOptions } from './options.js';
import { createParser } from './parser.js';

const DINFER_CODES = new Set<string>(Object.values(DinferErrorCode));

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Maps a socket.io-client `connect_error` to a typed error (a middleware's code, or TRANSPORT_CONNECT). */
function fromConnectError(error: Error & { data?: unknown }, url: string): DinferError {
  const data = error.data;
  if (
    isRecord(data) &&
    typeof data.code === 'string' &&
    DINFER_CODES.has(data.code) &&
    typeof data.message === 'string'
  ) {
    return new DinferError(
      data.code as DinferErrorCode,
      `listener ${url} refused the connection: ${data.message}`,
      {
        details: { url },
      },
    );
  }
  return new DinferError(DinferErrorCode.TRANSPORT_CONNECT, `cannot connect to ${url}: ${error.message}`, {
    cause: error,
    details: { url },
  });
}

/** Dials `address` and resolves with a raw channel once socket.io has connected. */
export function dialSocketIo(
  address: string,
  options: ResolvedOptions,
  signal: AbortSignal | undefined,
): Promise<FrameChannel> {
  let parsed: ReturnType<typeof parseAddress>;
  try {
    parsed = parseAddress(address);
  } catch (error) {
    return Promise.reject(error);
  }
  const remoteAddress = formatAddress(parsed.host, parsed.port);
  const url = `http://${remoteAddress}`;
  if (signal?.aborted) {
    return Promise.reject(
      new DinferError(DinferErrorCode.ABORTED, `dial ${address} aborted`, { cause: signal.reason }),
    );
  }
  const auth: SocketIoAuthPayload = { protocol: PROTOCOL_VERSION };
  const socketOptions: Partial<ManagerOptions & SocketOptions> & { maxPayload: number } = {
    path: options.path,
    transports: ['websocket'],
    forceNew: true,
    autoConnect: false,
    reconnection: false,
    timeout: options.connectTimeoutMs,
    auth: { ...auth },
    parser: createParser(1),
    // Passed through to the `ws` client: the largest single WebSocket message accepted.
    maxPayload: options.maxWsMessageBytes,
  };
  const socket = io(url, socketOptions);
  return new Promise<FrameChannel>((resolve, reject) => {
    let channel: SocketIoChannel | undefined;
    const onAbort = (): void =>
      fail(new DinferError(DinferErrorCode.ABORTED, `dial ${address} aborted`, { cause: signal?.reason }));
    const fail = (error: DinferError): void => {
      signal?.removeEventListener('abort', onAbort);
      socket.disconnect();
      options.logger.debug({ address, code: error.code, err: error.message }, 'socket.io dial failed');
      reject(error);
    };
    // Registered before connecting: the listener may speak right after socket.io's connect.
    socket.onAny((event: string, ...args: unknown[]) => channel?.receive(event, args));
    socket.on('connect', () => {
      signal?.removeEventListener('abort', onAbort);
      channel = new SocketIoChannel(
        {
          remoteAddress,
          emit: (piece) => {
            socket.emit(SocketIoEvent.FRAME, piece);
          },
          writable: () => whenWritable(socket.io.engine),
          disconnect: () => {
            socket.disconnect();
          },
        },
        options,
      );
      resolve(channel);
    });
    socket.on('connect_error', (error: Error) => {
      if (channel === undefined) fail(fromConnectError(error, url));
    });
    socket.on('disconnect', (reason: string, description: unknown) => {
      channel?.lost(linkError(reason, description, remoteAddress, options.maxWsMessageBytes));
    });
    signal?.addEventListener('abort', onAbort, { once: true });
    socket.connect();
  });
}
