/**
 * Keeps a dialed connection's links filled: whenever one drops, it redials through the
 * upgrader with core's one backoff, and attaches the new link to the same {@link Connection}
 * object. With every link gone it opens a fresh session; with some left, the new link joins
 * theirs.
 *
 * @module
 */
import { DinferError, DinferErrorCode, isDinferError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import type { AuthenticatedChannel } from './authenticate.js';
import { type ResolvedReconnectOptions, retryWithBackoff } from './backoff.js';
import type { ConnectionSession } from './connection.js';
import type { RpcConnection } from './rpc-connection.js';

/** Opens one authenticated link, joining `join` when given; `signal` aborts a dial in progress. */
export type LinkDialer = (
  join: ConnectionSession | undefined,
  signal: AbortSignal,
) => Promise<AuthenticatedChannel>;

/** What {@link startRedialing} needs. */
export interface RedialerOptions {
  readonly connection: RpcConnection;
  readonly dial: LinkDialer;
  /** Links the connection should hold. */
  readonly links: number;
  readonly reconnect: ResolvedReconnectOptions;
  /** Address, for logs and errors. */
  readonly address: string;
  /** Transport name: the `transport` label of `dinfer_transport_reconnects_total`. */
  readonly transport: string;
  readonly logger: Logger;
  readonly metrics: Metrics;
}

/** Errors no redial can fix: the connection closes with them. */
function isPermanent(error: unknown): boolean {
  return (
    isDinferError(error, DinferErrorCode.AUTH_FAILED) ||
    isDinferError(error, DinferErrorCode.PROTOCOL_VERSION)
  );
}

/**
 * Redials `connection`'s lost links until it closes. Gives up, closing the connection, on
 * `AUTH_FAILED` or `PROTOCOL_VERSION`, or after `reconnect.maxAttempts` failed dials in a row
 * (`DINFER_ERR_TRANSPORT_CONNECT`).
 */
export function startRedialing(options: RedialerOptions): void {
  const { connection, dial, links, reconnect, address, logger, metrics } = options;
  const life = new AbortController();
  void connection.closed.then(() => life.abort());
  const labels = { transport: options.transport };
  let running = false;

  const fill = async (): Promise<void> => {
    while (connection.isOpen && connection.linkCount < links) {
      const join = connection.linkCount > 0 ? connection.session : undefined;
      const link = await dial(join, life.signal);
      if (!connection.isOpen) {
        link.close();
        return;
      }
      connection.attach(link, join === undefined ? link.session : undefined);
      metrics.increment('dinfer_transport_reconnects_total', labels);
      logger.info({ connection: connection.id, address, links: connection.linkCount }, 'reconnected');
    }
  };

  const repair = (): void => {
    if (running || !connection.isOpen) return;
    running = true;
    retryWithBackoff(fill, reconnect, {
      signal: life.signal,
      delayFirst: true,
      retryable: (error) => !isPermanent(error),
      onRetry: (error, delayMs, attempt) =>
        logger.debug(
          {
            address,
            attempt,
            delayMs: Math.round(delayMs),
            err: error instanceof Error ? error.message : String(error),
          },
          'redial failed',
        ),
    })
      .catch((error: unknown) => {
        if (!connection.isOpen || life.signal.aborted) return;
        const reason = isPermanent(error)
          ? (error as DinferError)
          : new DinferError(
              DinferErrorCode.TRANSPORT_CONNECT,
              `gave up reconnecting to ${address} after ${reconnect.maxAttempts} attempts`,
              { cause: error, details: { address, attempts: reconnect.maxAttempts } },
            );
        logger.warn({ address, code: reason.code, err: reason.message }, 'reconnecting gave up');
        return connection.close(reason);
      })
      .finally(() => {
        running = false;
        // A link may have dropped again while the last one was being attached.
        if (connection.isOpen && connection.linkCount < links) repair();
      });
  };

  connection.onLinkLost = repair;
}
