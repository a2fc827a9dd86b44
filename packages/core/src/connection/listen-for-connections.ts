/**
 * The accepting half of core's upgrader: listens on a raw {@link Transport} and turns every
 * channel it hands out into an authenticated {@link Connection}.
 *
 * @module
 */
import { DinferError, DinferErrorCode } from '../errors.js';
import type { Listener, ListenOptions, Transport } from '../transport.js';
import { authenticateListenerSide } from './authenticate.js';
import type { Connection, ConnectionSession } from './connection.js';
import { type ConnectionOptions, resolveConnectionOptions } from './connection-options.js';
import type { FrameChannel } from './frame-channel.js';
import { RpcConnection } from './rpc-connection.js';

/** Options of {@link listenForConnections}. */
export interface ListenForConnectionsOptions extends ConnectionOptions, ListenOptions {
  /** Gets every connection whose dialer authenticated, once (however many links it pools). */
  readonly onConnection: (connection: Connection) => void;
}

/** Most links one pooled dialer may join to a connection. */
export const MAX_LINKS_PER_CONNECTION = 64;

/**
 * Listens on `address` with `transport`. Every channel the transport accepts must complete
 * the handshake within `handshakeTimeoutMs` (frames above 64 KiB are refused until the dialer
 * has proved the token; then the limit is the transport's `maxFrameBytes`) and becomes a
 * {@link Connection} for `onConnection`, or a further link of one (a pooled dialer).
 * Refused channels count in `dinfer_transport_handshake_failures_total{transport,code}`.
 *
 * `listener.close()` stops accepting and closes every accepted connection: those sides close
 * cleanly, and dialers are told the listener is shutting down (`DINFER_ERR_NOT_READY`), so
 * reconnecting ones come back when a listener returns on the address.
 *
 * @example
 * ```ts
 * const listener = await listenForConnections(tcpTransport(), '127.0.0.1:0', {
 *   token: process.env.DINFER_TOKEN,
 *   onConnection: (connection) =>
 *     connection.onRequest(async (request) => ({ header: { type: 'pong' }, attachments: [] })),
 * });
 * ```
 *
 * @throws DinferError `INVALID_ARGUMENT` for bad options, or the transport's `listen` errors
 *   (`TRANSPORT_CONNECT`, `ABORTED`).
 */
export async function listenForConnections(
  transport: Transport,
  address: string,
  options: ListenForConnectionsOptions,
): Promise<Listener> {
  const resolved = resolveConnectionOptions(transport, options);
  if (typeof options.onConnection !== 'function') {
    throw new DinferError(DinferErrorCode.INVALID_ARGUMENT, 'listenForConnections needs onConnection');
  }
  const { token, handshakeTimeoutMs, logger, metrics, engine } = resolved;
  const labels = { transport: transport.name };
  const pending = new Set<FrameChannel>();
  const connections = new Set<RpcConnection>();
  const sessions = new Map<string, { session: ConnectionSession; connection: RpcConnection }>();
  let closing: Promise<void> | undefined;

  const joinable = (id: string): ConnectionSession | undefined => {
    const entry = sessions.get(id);
    return entry?.connection.isOpen === true && entry.connection.linkCount < MAX_LINKS_PER_CONNECTION
      ? entry.session
      : undefined;
  };

  const accept = (channel: FrameChannel): void => {
    if (closing !== undefined) {
      channel.close();
      return;
    }
    pending.add(channel);
    authenticateListenerSide(channel, token, {
      timeoutMs: handshakeTimeoutMs,
      sessions: joinable,
      maxFrameBytes: transport.capabilities.maxFrameBytes,
    }).then(
      (authenticated) => {
        pending.delete(channel);
        if (closing !== undefined) {
          authenticated.close();
          return;
        }
        if (authenticated.joined) {
          const entry = sessions.get(authenticated.session.id);
          if (entry === undefined) authenticated.close();
          else entry.connection.attach(authenticated);
          return;
        }
        const connection = new RpcConnection(authenticated.remoteAddress, engine);
        connection.attach(authenticated, authenticated.session);
        connections.add(connection);
        const id = authenticated.session.id;
        sessions.set(id, { session: authenticated.session, connection });
        void connection.closed.then(() => {
          connections.delete(connection);
          if (sessions.get(id)?.connection === connection) sessions.delete(id);
        });
        metrics.increment('dinfer_transport_connections_opened_total', { ...labels, side: 'listener' });
        try {
          options.onConnection(connection);
        } catch (error) {
          logger.error({ err: String(error), remoteAddress: connection.remoteAddress }, 'onConnection threw');
        }
      },
      (error: DinferError) => {
        pending.delete(channel);
        metrics.increment('dinfer_transport_handshake_failures_total', { ...labels, code: error.code });
        logger.warn(
          { remoteAddress: channel.remoteAddress, code: error.code, err: error.message },
          'connection refused at the handshake',
        );
      },
    );
  };

  const raw = await transport.listen(address, accept, { signal: options.signal });
  return {
    address: raw.address,
    close(): Promise<void> {
      closing ??= (async () => {
        for (const channel of pending) {
          channel.close(new DinferError(DinferErrorCode.TRANSPORT_CLOSED, 'listener closed'));
        }
        pending.clear();
        await Promise.all([...connections].map((connection) => connection.closeForRestart()));
        await raw.close();
      })();
      return closing;
    },
  };
}
