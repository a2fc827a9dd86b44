/**
 * The dialing side: a socket.io-client socket (WebSocket only, its own manager) that runs the
 * challenge/response handshake after every (re)connection before its {@link Connection}
 * carries traffic again.
 *
 * @module
 */
import {
  type Connection,
  DialerHandshake,
  DinferError,
  DinferErrorCode,
  isDinferError,
  isRecord,
  PROTOCOL_VERSION,
} from '@dinfer/core';
import { io, type ManagerOptions, type SocketOptions } from 'socket.io-client';
import { formatAddress, parseAddress } from './address.js';
import { SocketIoConnection, type SocketLink } from './connection.js';
import { type SocketIoAuthPayload, SocketIoEvent } from './events.js';
import { whenWritable } from './flow.js';
import type { ResolvedOptions } from './options.js';
import { createParser } from './parser.js';

const DINFER_CODES = new Set<string>(Object.values(DinferErrorCode));

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

function protocolError(message: string): DinferError {
  return new DinferError(DinferErrorCode.PROTOCOL, message);
}

/** Dials `address` and resolves once the handshake succeeded. */
export function dialSocketIo(
  address: string,
  options: ResolvedOptions,
  signal: AbortSignal | undefined,
): Promise<Connection> {
  let parsed: ReturnType<typeof parseAddress>;
  try {
    parsed = parseAddress(address);
  } catch (error) {
    return Promise.reject(error);
  }
  const { host, port } = parsed;
  const remoteAddress = formatAddress(host, port);
  const url = `http://${remoteAddress}`;
  if (signal?.aborted) {
    return Promise.reject(
      new DinferError(DinferErrorCode.ABORTED, `dial ${address} aborted`, { cause: signal.reason }),
    );
  }
  const { logger, metrics } = options;
  const auth: SocketIoAuthPayload = { protocol: PROTOCOL_VERSION };
  const socketOptions: Partial<ManagerOptions & SocketOptions> & { maxPayload: number } = {
    path: options.path,
    transports: ['websocket'],
    forceNew: true,
    autoConnect: false,
    reconnection: options.reconnection,
    timeout: options.handshakeTimeoutMs,
    auth: { ...auth },
    parser: createParser(options.maxAttachments),
    // Passed through to the `ws` client: the largest single WebSocket message accepted.
    maxPayload: options.maxWsMessageBytes,
  };
  const socket = io(url, socketOptions);
  const link: SocketLink = {
    emit: (name, args) => {
      socket.emit(name, ...args);
    },
    writable: () => whenWritable(socket.io.engine),
  };

  return new Promise<Connection>((resolve, reject) => {
    let connection: SocketIoConnection | undefined;
    let handshake: DialerHandshake | undefined;
    let answered = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let dialing = true;

    const onAbort = (): void =>
      failDial(
        new DinferError(DinferErrorCode.ABORTED, `dial ${address} aborted`, { cause: signal?.reason }),
      );
    const failDial = (error: DinferError): void => {
      if (!dialing) return;
      dialing = false;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      socket.disconnect();
      logger.warn({ address, code: error.code, err: error.message }, 'socket.io dial failed');
      reject(error);
    };
    const handshakeFailed = (error: DinferError): void => {
      clearTimeout(timer);
      handshake = undefined;
      if (connection === undefined) {
        failDial(error);
      } else if (error.code === DinferErrorCode.TIMEOUT) {
        // Transient: drop the engine so socket.io-client reconnects and the handshake reruns.
        logger.warn(
          { connection: connection.id, err: error.message },
          'socket.io re-handshake timed out; reconnecting',
        );
        socket.io.engine.close();
      } else {
        connection.protocolFailure(error);
      }
    };

    socket.on('connect', () => {
      handshake = new DialerHandshake(options.token);
      answered = false;
      clearTimeout(timer);
      timer = setTimeout(
        () =>
          handshakeFailed(
            new DinferError(
              DinferErrorCode.TIMEOUT,
              `handshake with ${url} not completed within ${options.handshakeTimeoutMs} ms`,
            ),
          ),
        options.handshakeTimeoutMs,
      );
    });

    socket.onAny((event: string, ...args: unknown[]) => {
      if (connection?.isLinked === true) {
        connection.dispatch(event, args);
        return;
      }
      try {
        if (handshake === undefined)
          throw protocolError(`event "${String(event).slice(0, 64)}" outside a handshake`);
        if (event === SocketIoEvent.HELLO) {
          if (answered || args.length !== 1) throw protocolError('unexpected hello');
          answered = true;
          socket.emit(SocketIoEvent.AUTH, handshake.answer(args[0]));
          return;
        }
        if (event !== SocketIoEvent.WELCOME && event !== SocketIoEvent.REJECT) {
          throw protocolError(`event "${String(event).slice(0, 64)}" before the handshake completed`);
        }
        const expectedType = event === SocketIoEvent.WELCOME ? 'welcome' : 'reject';
        if (!answered || args.length !== 1 || !isRecord(args[0]) || args[0].type !== expectedType) {
          throw protocolError(`unexpected ${expectedType}`);
        }
        handshake.confirm(args[0]);
      } catch (error) {
        handshakeFailed(isDinferError(error) ? error : protocolError('malformed handshake message'));
        return;
      }
      // Welcome verified: the link is usable.
      clearTimeout(timer);
      handshake = undefined;
      if (connection === undefined) {
        const dialed = new SocketIoConnection({
          remoteAddress,
          options,
          shutdown: () => {
            socket.disconnect();
          },
        });
        connection = dialed;
        dialed.attach(link);
        dialing = false;
        signal?.removeEventListener('abort', onAbort);
        metrics.increment('dinfer_transport_connections_total', { transport: 'socketio', side: 'dialer' });
        logger.debug({ connection: dialed.id, remoteAddress }, 'socket.io connection authenticated');
        resolve(dialed);
      } else {
        connection.attach(link);
        metrics.increment('dinfer_transport_reconnects_total', { transport: 'socketio' });
        logger.info({ connection: connection.id, remoteAddress }, 'socket.io connection re-established');
      }
    });

    socket.on('connect_error', (error: Error) => {
      const failure = fromConnectError(error, url);
      if (connection === undefined) {
        failDial(failure);
      } else if (!socket.active) {
        // A middleware refused the reconnection (e.g. protocol version): socket.io will not retry.
        connection.terminate(failure);
      } else {
        logger.debug(
          { connection: connection.id, err: failure.message },
          'socket.io reconnection attempt failed',
        );
      }
    });

    socket.on('disconnect', (reason: string) => {
      clearTimeout(timer);
      handshake = undefined;
      if (connection === undefined) {
        failDial(
          new DinferError(
            DinferErrorCode.TRANSPORT_CONNECT,
            `${url} dropped the connection during the handshake (${reason})`,
          ),
        );
        return;
      }
      if (reason === 'io client disconnect') {
        connection.terminate(undefined);
      } else if (reason === 'io server disconnect') {
        connection.terminate(
          new DinferError(DinferErrorCode.TRANSPORT_CLOSED, `listener ${url} closed the connection`),
        );
      } else if (options.reconnection && socket.active) {
        connection.detach(reason);
      } else {
        connection.terminate(
          new DinferError(DinferErrorCode.TRANSPORT_CLOSED, `link to ${url} lost: ${reason}`, {
            details: { reason },
          }),
        );
      }
    });

    signal?.addEventListener('abort', onAbort, { once: true });
    socket.connect();
  });
}
