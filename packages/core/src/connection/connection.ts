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
  /** Aborted when the connection closes or the requester gives up (where the transport can tell). */
  readonly signal: AbortSignal;
  /** The connection the request arrived on. */
  readonly connection: Connection;
}

/** Answers requests arriving on a connection. A thrown error reaches the requester as `DINFER_ERR_REMOTE`. */
export type RequestHandler = (request: Envelope, context: RequestContext) => Promise<Envelope>;

/** Receives one-way messages, in the order they were sent. */
export type MessageHandler = (message: Envelope, connection: Connection) => void;

/**
 * A bidirectional, authenticated link between two peers. Requests are matched to replies by
 * id, and many may be in flight at once. When the connection closes (either side, or the
 * link drops), every pending request rejects with `DINFER_ERR_TRANSPORT_CLOSED` and
 * {@link Connection.closed} resolves.
 */
export interface Connection {
  /** Unique id of this connection within the process. */
  readonly id: string;
  /** The remote peer's address, for logs. */
  readonly remoteAddress: string;
  /** True until the connection closes. */
  readonly isOpen: boolean;
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
