/**
 * The dialing half of core's upgrader: dials a raw {@link Transport}, authenticates, and
 * returns a {@link Connection}, optionally pooled over several links and redialing when they
 * drop.
 *
 * @module
 */
import { DinferError, DinferErrorCode } from '../errors.js';
import type { DialOptions, Transport } from '../transport.js';
import { type AuthenticatedChannel, authenticateDialerSide } from './authenticate.js';
import { type ReconnectOptions, resolveReconnectOptions } from './backoff.js';
import type { Connection, ConnectionSession } from './connection.js';
import { type ConnectionOptions, resolveConnectionOptions } from './connection-options.js';
import { MAX_LINKS_PER_CONNECTION } from './listen-for-connections.js';
import { startRedialing } from './redialer.js';
import { RpcConnection } from './rpc-connection.js';

/** Options of {@link dialConnection}. */
export interface DialConnectionOptions extends ConnectionOptions, DialOptions {
  /**
   * Redial when a link drops (an error, an EOF without goodbye, or the listener shutting
   * down), with core's backoff; `true` for the default backoff. While no link is up, calls
   * wait for one within their own timeout; requests in flight on a dropped link fail with
   * `DINFER_ERR_TRANSPORT_CLOSED`. A peer that closes on purpose is not redialed. Default off.
   */
  readonly reconnect?: ReconnectOptions | boolean | undefined;
  /**
   * Links (channels) behind the one connection, each authenticated, all in one session:
   * requests are spread over them round-robin, one-way messages keep to one link so they
   * stay in order. The listener sees one connection. Default 1, at most 64.
   */
  readonly poolSize?: number | undefined;
}

/**
 * Dials `address` with `transport` and resolves once the handshake (and every pooled link)
 * succeeded. Its incoming frame limit is raised to the transport's `maxFrameBytes` once it has
 * answered the listener's challenge. Counts `dinfer_transport_connections_opened_total{transport,side="dialer"}`
 * and, when reconnecting, `dinfer_transport_reconnects_total{transport}`.
 *
 * @example
 * ```ts
 * const connection = await dialConnection(tcpTransport(), '10.0.0.1:7070', {
 *   token: process.env.DINFER_TOKEN,
 *   reconnect: { initialDelayMs: 100, maxDelayMs: 5000 },
 * });
 * const reply = await connection.request({ header: { type: 'ping' }, attachments: [] });
 * ```
 *
 * @throws DinferError `INVALID_ARGUMENT` for bad options, the transport's dial errors
 *   (`TRANSPORT_CONNECT`, `ABORTED`), or the handshake's (`AUTH_FAILED`,
 *   `PROTOCOL_VERSION`, `PROTOCOL`, `TIMEOUT`, `TRANSPORT_CLOSED`).
 */
export async function dialConnection(
  transport: Transport,
  address: string,
  options: DialConnectionOptions = {},
): Promise<Connection> {
  const resolved = resolveConnectionOptions(transport, options);
  const poolSize = options.poolSize ?? 1;
  if (!Number.isInteger(poolSize) || poolSize < 1 || poolSize > MAX_LINKS_PER_CONNECTION) {
    throw new DinferError(
      DinferErrorCode.INVALID_ARGUMENT,
      `poolSize must be an integer in [1, ${MAX_LINKS_PER_CONNECTION}]`,
      { details: { poolSize } },
    );
  }
  const reconnect =
    options.reconnect === undefined || options.reconnect === false
      ? undefined
      : resolveReconnectOptions(options.reconnect === true ? {} : options.reconnect);
  const { token, handshakeTimeoutMs, logger, metrics, engine } = resolved;

  const dialLink = async (
    join: ConnectionSession | undefined,
    signal: AbortSignal | undefined,
  ): Promise<AuthenticatedChannel> => {
    const channel = await transport.dial(address, { signal });
    return authenticateDialerSide(channel, token, {
      timeoutMs: handshakeTimeoutMs,
      signal,
      join,
      maxFrameBytes: transport.capabilities.maxFrameBytes,
    });
  };

  const first = await dialLink(undefined, options.signal);
  const connection = new RpcConnection(first.remoteAddress, {
    ...engine,
    redialing: reconnect !== undefined,
  });
  connection.attach(first, first.session);
  if (reconnect !== undefined) {
    startRedialing({
      connection,
      dial: dialLink,
      links: poolSize,
      reconnect,
      address,
      transport: transport.name,
      logger,
      metrics,
    });
  }
  try {
    for (let i = 1; i < poolSize; i++) connection.attach(await dialLink(first.session, options.signal));
  } catch (error) {
    await connection.close();
    throw error;
  }
  metrics.increment('dinfer_transport_connections_opened_total', {
    transport: transport.name,
    side: 'dialer',
  });
  return connection;
}
