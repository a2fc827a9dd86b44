/**
 * What the rest of dinfer talks through: a {@link Connection} between two authenticated peers,
 * with one-way messages and requests that get a reply. Core's upgrader builds connections on
 * the raw channels a transport provides.
 *
 * @module
 */
import type { DinferError } from '../errors.js';
import type { Envelope } from '../transport.js';

/** Per-call options for {@link Connection.request}. */
export interface RequestOptions {
  /** Aborts the request; its promise rejects with `DINFER_ERR_ABORTED`. */
  signal?: AbortSignal | undefined;
  /** Rejects with `DINFER_ERR_TIMEOUT` when no reply arrives in time. Default: the connection's. */
  timeoutMs?: number | undefined;
}

/** Context handed to a request handler. */
export interface RequestContext {
  /**
   * Aborted when the connection closes or the requester gives up (its timeout or signal): the
   * request is then cancelled, and whatever the handler returns is not sent.
   */
  readonly signal: AbortSignal;
  /** The connection the request arrived on. */
  readonly connection: Connection;
}

/** Answers requests arriving on a connection. A thrown error reaches the requester as `DINFER_ERR_REMOTE`. */
export type RequestHandler = (request: Envelope, context: RequestContext) => Promise<Envelope>;

/** Receives one-way messages, in the order they were sent. */
export type MessageHandler = (message: Envelope, connection: Connection) => void;

/**
 * The secret both ends of an authenticated connection share after the handshake, derived from
 * the cluster token and both sides' nonces (`protocol/handshake.ts`). It never crosses the
 * wire; other channels between the same peers (signed heartbeats) can be bound to it.
 */
export interface ConnectionSession {
  /** Public id of the session (derived from the key), e.g. for logs or for joining a link to it. */
  readonly id: string;
  /** 32 bytes, secret when {@link ConnectionSession.authenticated}; public otherwise. */
  readonly key: Uint8Array;
  /** True when both sides proved they hold the cluster token; false in a cluster without one. */
  readonly authenticated: boolean;
}

/**
 * A bidirectional, authenticated link between two peers. Requests are matched to replies by
 * id, and many may be in flight at once. When the connection closes (either side, or the
 * link drops), every pending request rejects with `DINFER_ERR_TRANSPORT_CLOSED` and
 * {@link Connection.closed} resolves.
 *
 * Cancellation, one rule: a request whose requester gives up (timeout or abort) is answered
 * nothing further. The requester has already rejected with `DINFER_ERR_TIMEOUT` or
 * `DINFER_ERR_ABORTED`; the peer's handler sees `context.signal` abort and its result is
 * dropped, and a request still queued for a handler is dropped unanswered.
 */
export interface Connection {
  /** Unique id of this connection within the process. */
  readonly id: string;
  /** The remote peer's address, for logs. */
  readonly remoteAddress: string;
  /** True until the connection closes. */
  readonly isOpen: boolean;
  /** The session of the handshake that opened the connection (the latest, after a redial). */
  readonly session?: ConnectionSession | undefined;
  /** Sends a one-way message. Resolves once it is handed to the OS (backpressure respected). */
  send(message: Envelope, options?: { signal?: AbortSignal | undefined }): Promise<void>;
  /** Sends a request and resolves with the peer's reply. */
  request(message: Envelope, options?: RequestOptions): Promise<Envelope>;
  /** Installs the handler for incoming requests (one per connection; replaces the previous). */
  onRequest(handler: RequestHandler): void;
  /** Installs the handler for incoming one-way messages (one per connection). */
  onMessage(handler: MessageHandler): void;
  /** Closes the connection; pending requests on both sides fail. Idempotent. */
  close(reason?: DinferError): Promise<void>;
  /** Resolves when the connection has closed, with the error that closed it (undefined for a clean close). */
  readonly closed: Promise<DinferError | undefined>;
}
