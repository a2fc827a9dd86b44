/**
 * The listening side: a `node:http` server with a socket.io `Server` (WebSocket only, no
 * compression, `maxHttpBufferSize` sized for the largest frame). Every socket first passes a
 * protocol-version middleware, then the challenge/response handshake; only then does it
 * become a {@link Connection}.
 *
 * @module
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  type Connection,
  DinferError,
  DinferErrorCode,
  isDinferError,
  type Listener,
  ListenerHandshake,
  PROTOCOL_VERSION,
  rejectFor,
} from '@dinfer/core';
import { Server, type Socket } from 'socket.io';
import { formatAddress, parseAddress } from './address.js';
import { SocketIoConnection } from './connection.js';
import { SocketIoEvent } from './events.js';
import { whenWritable } from './flow.js';
import type { ResolvedOptions } from './options.js';
import { createParser } from './parser.js';

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

/**
 * The error a socket.io disconnect `reason` stands for: `undefined` for a clean close,
 * `FRAME_TOO_LARGE` when the WebSocket layer refused a message above `maxHttpBufferSize`
 * (checked from the frame header, before the bytes are buffered), else `TRANSPORT_CLOSED`.
 */
function linkError(
  reason: string,
  description: unknown,
  remoteAddress: string,
  maxMessageBytes: number,
): DinferError | undefined {
  if (
    reason === 'client namespace disconnect' ||
    reason === 'server namespace disconnect' ||
    reason === 'server shutting down'
  ) {
    return undefined;
  }
  const detail = description instanceof Error ? description.message : String(description ?? '');
  if (reason === 'transport error' && /max payload size exceeded/i.test(detail)) {
    return new DinferError(
      DinferErrorCode.FRAME_TOO_LARGE,
      `${remoteAddress} sent a WebSocket message above ${maxMessageBytes} bytes (maxFrameBytes + overhead)`,
      { details: { remoteAddress, maxMessageBytes } },
    );
  }
  return new DinferError(DinferErrorCode.TRANSPORT_CLOSED, `link to ${remoteAddress} lost: ${reason}`, {
    details: { reason, ...(detail === '' ? {} : { description: detail }) },
  });
}

/** Listens on `address` and hands every authenticated socket to `onConnection`. */
export async function listenSocketIo(
  address: string,
  onConnection: (connection: Connection) => void,
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
    connectTimeout: options.handshakeTimeoutMs,
    parser: createParser(options.maxAttachments),
  });
  const connections = new Set<SocketIoConnection>();
  let listenerClosing = false;
  io.use(versionMiddleware);
  io.on('connection', (socket) => {
    const hs = new ListenerHandshake(options.token);
    let connection: SocketIoConnection | undefined;
    const remoteAddress = remoteAddressOf(socket);
    const fail = (error: unknown): void => {
      clearTimeout(timer);
      const failure = isDinferError(error)
        ? error
        : new DinferError(DinferErrorCode.PROTOCOL, 'handshake failed', { cause: error });
      logger.warn(
        { remoteAddress, code: failure.code, err: failure.message },
        'socket.io handshake failed; disconnecting',
      );
      metrics.increment('dinfer_transport_handshake_failures_total', {
        transport: 'socketio',
        code: failure.code,
      });
      socket.emit(SocketIoEvent.REJECT, rejectFor(failure));
      socket.disconnect(true);
    };
    const timer = setTimeout(
      () =>
        fail(
          new DinferError(
            DinferErrorCode.TIMEOUT,
            `handshake not completed within ${options.handshakeTimeoutMs} ms`,
          ),
        ),
      options.handshakeTimeoutMs,
    );
    socket.onAny((event: string, ...args: unknown[]) => {
      if (connection !== undefined) {
        connection.dispatch(event, args);
        return;
      }
      if (event !== SocketIoEvent.AUTH || args.length !== 1) {
        fail(
          new DinferError(
            DinferErrorCode.AUTH_FAILED,
            `event "${String(event).slice(0, 64)}" before the handshake completed`,
          ),
        );
        return;
      }
      let welcome: ReturnType<ListenerHandshake['verify']>;
      try {
        welcome = hs.verify(args[0]);
      } catch (error) {
        fail(error);
        return;
      }
      clearTimeout(timer);
      socket.emit(SocketIoEvent.WELCOME, welcome);
      const accepted = new SocketIoConnection({
        remoteAddress,
        options,
        shutdown: () => {
          connections.delete(accepted);
          // While the listener closes, io.close() drops the links without a socket.io
          // DISCONNECT packet, so reconnecting dialers come back once it listens again.
          if (!listenerClosing) socket.disconnect(true);
        },
      });
      connection = accepted;
      connections.add(accepted);
      accepted.attach({
        emit: (name, eventArgs) => {
          socket.emit(name, ...eventArgs);
        },
        writable: () => whenWritable(socket.conn),
      });
      metrics.increment('dinfer_transport_connections_total', { transport: 'socketio', side: 'listener' });
      logger.debug({ connection: accepted.id, remoteAddress }, 'socket.io connection authenticated');
      try {
        onConnection(accepted);
      } catch (error) {
        logger.error({ connection: accepted.id, err: error }, 'onConnection threw');
      }
    });
    socket.on('disconnect', (reason: string, description: unknown) => {
      clearTimeout(timer);
      const error = linkError(reason, description, remoteAddress, options.maxWsMessageBytes);
      if (error?.code === DinferErrorCode.FRAME_TOO_LARGE) {
        logger.warn(
          { remoteAddress, code: error.code, err: error.message },
          'socket.io peer sent an oversize frame; dropped',
        );
        metrics.increment('dinfer_transport_protocol_errors_total', {
          transport: 'socketio',
          code: error.code,
        });
      }
      if (connection === undefined) return;
      connections.delete(connection);
      connection.terminate(error);
    });
    socket.emit(SocketIoEvent.HELLO, hs.hello());
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
        listenerClosing = true;
        for (const connection of [...connections]) connection.terminate(undefined);
        connections.clear();
        const closed = io.close();
        httpServer.closeAllConnections();
        await closed.catch((error: unknown) => {
          if ((error as NodeJS.ErrnoException).code !== 'ERR_SERVER_NOT_RUNNING') throw error;
        });
        logger.info({ address: boundAddress }, 'socket.io transport listener closed');
      })();
      return closing;
    },
  };
}
