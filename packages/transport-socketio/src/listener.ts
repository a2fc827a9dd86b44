/**
 * The listening side: a `node:http` server with a socket.io `Server` (WebSocket only, no
 * compression, `maxHttpBufferSize` one piece). Every socket first passes the origin check and
 * a protocol-version middleware, then goes to `onChannel` as a raw channel.
 *
 * @module
 */
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo, Socket as NetSocket } from 'node:net';
import {
  DinferError,
  DinferErrorCode,
  type FrameChannel,
  type Listener,
  PROTOCOL_VERSION,
} from '@dinfer/core';
import { Server, type Socket } from 'socket.io';
import { formatAddress, parseAddress } from './address.js';
import { SocketIoChannel } from './channel.js';
import { SocketIoEvent } from './events.js';
import { whenWritable } from './flow.js';
import { linkError } from './link-error.js';
import type { ResolvedOptions } from './options.js';
import { createParser } from './parser.js';

/** How long the socket of an unauthenticated channel closed by this side may linger. */
const CLOSE_LINGER_MS = 2000;

/** Error a middleware passes to socket.io; `data` reaches the client's `connect_error`. */
interface MiddlewareError extends Error {
  data?: { code: string; message: string };
}

function versionMiddleware(socket: Socket, next: (error?: Error) => void): void {
  const auth = socket.handshake.auth as Record<string, unknown> | undefined;
  const protocol = auth?.protocol;
  if (protocol === PROTOCOL_VERSION) {
    next();
    return;
  }
  const message =
    protocol === undefined
      ? `no dinfer protocol version in the socket.io auth payload; this listener speaks protocol ${PROTOCOL_VERSION}`
      : `peer speaks protocol ${String(protocol).slice(0, 32)}, this listener speaks ${PROTOCOL_VERSION}`;
  const error: MiddlewareError = new Error(message);
  error.data = { code: DinferErrorCode.PROTOCOL_VERSION, message };
  next(error);
}

function remoteAddressOf(socket: Socket): string {
  const raw = socket.request.socket;
  const host = raw.remoteAddress ?? socket.handshake.address;
  return raw.remotePort === undefined ? host : formatAddress(host.replace(/^::ffff:/, ''), raw.remotePort);
}

/** Admits requests without an `Origin` header (not a browser) or with a listed one. */
function originCheck(allowed: readonly string[]) {
  return (
    request: IncomingMessage,
    callback: (error: string | null | undefined, success: boolean) => void,
  ) => {
    const origin = request.headers.origin;
    callback(null, origin === undefined || allowed.includes(origin));
  };
}

/** Listens on `address` and hands every socket that connects to `onChannel`. */
export async function listenSocketIo(
  address: string,
  onChannel: (channel: FrameChannel) => void,
  options: ResolvedOptions,
  signal: AbortSignal | undefined,
): Promise<Listener> {
  const { host, port } = parseAddress(address);
  if (signal?.aborted)
    throw new DinferError(DinferErrorCode.ABORTED, 'listen aborted', { cause: signal.reason });
  const { logger, metrics } = options;
  const httpServer = createServer((_request, response) => {
    response.writeHead(404).end();
  });
  const io = new Server(httpServer, {
    path: options.path,
    transports: ['websocket'],
    perMessageDeflate: false,
    httpCompression: false,
    maxHttpBufferSize: options.maxWsMessageBytes,
    serveClient: false,
    allowEIO3: false,
    connectTimeout: options.connectTimeoutMs,
    parser: createParser(1),
    allowRequest: originCheck(options.cors),
    ...(options.cors.length === 0 ? {} : { cors: { origin: [...options.cors], methods: ['GET'] } }),
  });
  const channels = new Set<SocketIoChannel>();
  const lingering = new Set<NetSocket>();
  io.use(versionMiddleware);
  io.on('connection', (socket) => {
    const remoteAddress = remoteAddressOf(socket);
    const channel = new SocketIoChannel(
      {
        remoteAddress,
        emit: (piece) => {
          socket.emit(SocketIoEvent.FRAME, piece);
        },
        writable: () => whenWritable(socket.conn),
        disconnect: (stopReading) => {
          socket.disconnect(true);
          if (!stopReading) return;
          // An unauthenticated peer gets nothing more read: what was sent still goes out, and
          // the socket is cut if the peer has not closed it after the linger time.
          const raw = socket.request.socket;
          raw.pause();
          lingering.add(raw);
          raw.once('close', () => lingering.delete(raw));
          setTimeout(() => raw.destroy(), CLOSE_LINGER_MS).unref();
        },
      },
      options,
    );
    channels.add(channel);
    channel.onClose(() => channels.delete(channel));
    socket.onAny((event: string, ...args: unknown[]) => channel.receive(event, args));
    socket.on('disconnect', (reason: string, description: unknown) => {
      const error = linkError(reason, description, remoteAddress, options.maxWsMessageBytes);
      if (error.code === DinferErrorCode.FRAME_TOO_LARGE) {
        logger.warn(
          { remoteAddress, code: error.code, err: error.message },
          'socket.io peer sent an oversize message',
        );
        metrics.increment('dinfer_transport_frames_rejected_total', {
          transport: 'socketio',
          code: error.code,
        });
        // Cut it off at once: a graceful WebSocket close would keep reading (and discarding)
        // whatever the peer still sends until it answers the close.
        socket.request.socket.destroy();
      }
      channel.lost(error);
    });
    try {
      onChannel(channel);
    } catch (error) {
      logger.error({ err: String(error), remoteAddress }, 'onChannel threw');
      channel.close();
    }
  });

  await new Promise<void>((resolve, reject) => {
    const onAbort = (): void => {
      cleanup();
      httpServer.close();
      reject(new DinferError(DinferErrorCode.ABORTED, 'listen aborted', { cause: signal?.reason }));
    };
    const onError = (error: Error): void => {
      cleanup();
      reject(
        new DinferError(DinferErrorCode.TRANSPORT_CONNECT, `cannot listen on ${address}: ${error.message}`, {
          cause: error,
          details: { address },
        }),
      );
    };
    const cleanup = (): void => {
      httpServer.off('error', onError);
      signal?.removeEventListener('abort', onAbort);
    };
    httpServer.once('error', onError);
    signal?.addEventListener('abort', onAbort, { once: true });
    httpServer.listen(port, host, () => {
      cleanup();
      resolve();
    });
  }).catch(async (error: unknown) => {
    await io.close().catch(() => {});
    throw error;
  });

  const bound = httpServer.address() as AddressInfo;
  const boundAddress = formatAddress(bound.address, bound.port);
  logger.info({ address: boundAddress, path: options.path }, 'socket.io transport listening');
  let closing: Promise<void> | undefined;
  return {
    address: boundAddress,
    close(): Promise<void> {
      closing ??= (async () => {
        for (const channel of [...channels]) channel.close();
        const closed = io.close();
        httpServer.closeAllConnections();
        // Sockets of unauthenticated peers still lingering go now.
        for (const raw of lingering) raw.destroy();
        await closed.catch((error: unknown) => {
          if ((error as NodeJS.ErrnoException).code !== 'ERR_SERVER_NOT_RUNNING') throw error;
        });
        logger.info({ address: boundAddress }, 'socket.io transport listener closed');
      })();
      return closing;
    },
  };
}
