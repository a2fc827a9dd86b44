/**
 * The one RPC engine: a {@link Connection} over one or more {@link FrameChannel} links to the
 * same peer. Request ids, many requests in flight, replies matched by id, ordered one-way
 * messages, remote errors, timeouts, cancellation, close semantics, queueing while no handler
 * is installed, and metrics. Transports only move envelopes; this holds the rest.
 *
 * Links: requests are spread round-robin over the open links and answered on the link they
 * arrived on; one-way messages all go over the oldest open link, so they keep their order.
 * A link that merely drops (`DINFER_ERR_TRANSPORT_CLOSED`) fails the requests in flight on it
 * and is removed; the connection closes when its last link is gone, unless its owner redials
 * (then calls wait for the next link, within their timeout). A link that fails with any other
 * error (a protocol violation, an oversize frame) closes the whole connection.
 *
 * Internal: built by `createChannelConnection`, `listenForConnections` and `dialConnection`.
 *
 * @module
 */
import { DinferError, DinferErrorCode, isDinferError } from '../errors.js';
import { type Logger, silentLogger } from '../logger.js';
import { type Metrics, noopMetrics } from '../metrics.js';
import type { Envelope, MessageHeader } from '../transport.js';
import type {
  Connection,
  ConnectionSession,
  MessageHandler,
  RequestContext,
  RequestHandler,
  RequestOptions,
} from './connection.js';
import type { FrameChannel } from './frame-channel.js';
import { parseRpcHeader, type RpcErrorBody, type RpcHeader, toRpcError } from './rpc-header.js';

/** Options of an {@link RpcConnection}. */
export interface RpcConnectionOptions {
  /** Name of the transport underneath: the `transport` label of every metric. Default `unknown`. */
  transport?: string | undefined;
  /** Timeout of a request that names none, in ms; `Infinity` for none. Default 30 000. */
  defaultTimeoutMs?: number | undefined;
  /** Incoming requests and messages held while no handler is installed. Default 1024. */
  maxQueued?: number | undefined;
  /** How long `close()` waits for the links to report they closed, in ms. Default 2000. */
  closeTimeoutMs?: number | undefined;
  /** Receives protocol errors and dropped messages (debug: closes, late replies). Default silent. */
  logger?: Logger | undefined;
  /**
   * Receives `dinfer_transport_requests_total{transport,outcome}`,
   * `dinfer_transport_request_duration_seconds{transport}`,
   * `dinfer_transport_connections_closed_total{transport,reason}` and
   * `dinfer_transport_protocol_errors_total{transport,code}`. Default no-op.
   */
  metrics?: Metrics | undefined;
  /**
   * The owner replaces lost links (a reconnecting dialer): without links the connection stays
   * open and calls wait for the next link. Default false.
   */
  redialing?: boolean | undefined;
}

/** Default request timeout, in ms. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;

/** One channel of a connection. */
interface Link {
  readonly channel: FrameChannel;
  open: boolean;
  readonly closed: Promise<void>;
}

interface PendingRequest {
  readonly id: number;
  readonly message: Envelope;
  /** The link the request went out on; `undefined` while it waits for one. */
  link: Link | undefined;
  readonly resolve: (reply: Envelope) => void;
  readonly reject: (error: DinferError) => void;
}

interface QueuedRequest {
  readonly id: number;
  readonly link: Link;
  readonly envelope: Envelope;
}

interface LinkWaiter {
  readonly resolve: () => void;
  readonly reject: (error: DinferError) => void;
}

const OUTCOMES = ['ok', 'remote_error', 'failed', 'timeout', 'aborted'] as const;
type Outcome = (typeof OUTCOMES)[number];
type OutcomeLabels = Readonly<Record<Outcome, Readonly<Record<string, string>>>>;

let connectionCounter = 0;

function checkTimeout(value: number, what: string): number {
  if (typeof value !== 'number' || Number.isNaN(value) || value <= 0) {
    throw new DinferError(
      DinferErrorCode.INVALID_ARGUMENT,
      `${what} must be a positive number of ms or Infinity`,
    );
  }
  return value;
}

function checkEnvelope(envelope: Envelope, what: string): void {
  if (
    typeof envelope !== 'object' ||
    envelope === null ||
    typeof envelope.header !== 'object' ||
    envelope.header === null ||
    typeof envelope.header.type !== 'string' ||
    envelope.header.type.length === 0 ||
    !Array.isArray(envelope.attachments) ||
    !envelope.attachments.every((a) => a instanceof Uint8Array)
  ) {
    throw new DinferError(
      DinferErrorCode.INVALID_ARGUMENT,
      `${what} must be { header: { type: string, ... }, attachments: Uint8Array[] }`,
    );
  }
}

function asTransportError(error: unknown, message: string): DinferError {
  return isDinferError(error)
    ? error
    : new DinferError(DinferErrorCode.TRANSPORT_CLOSED, message, { cause: error });
}

/**
 * What a request handler gets as `context`. The AbortController behind `signal` is created
 * only if the handler reads `signal` (most never do, and one per request is a measurable
 * share of a small request's cost).
 */
class IncomingRequest implements RequestContext {
  readonly connection: Connection;
  readonly link: Link;
  #controller: AbortController | undefined;
  #reason: DinferError | undefined;

  constructor(connection: Connection, link: Link) {
    this.connection = connection;
    this.link = link;
  }

  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController();
      if (this.#reason !== undefined) this.#controller.abort(this.#reason);
    }
    return this.#controller.signal;
  }

  get aborted(): boolean {
    return this.#reason !== undefined;
  }

  abort(reason: DinferError): void {
    if (this.#reason !== undefined) return;
    this.#reason = reason;
    this.#controller?.abort(reason);
  }
}

/** A {@link Connection} over a set of links to one peer. */
export class RpcConnection implements Connection {
  readonly id: string;
  readonly closed: Promise<DinferError | undefined>;
  /** Called when a link is lost while the connection stays open (the owner may redial). */
  onLinkLost: ((remaining: number) => void) | undefined;

  readonly #defaultTimeoutMs: number;
  readonly #maxQueued: number;
  readonly #closeTimeoutMs: number;
  readonly #logger: Logger;
  readonly #metrics: Metrics;
  /** False with the no-op metrics: skips clock reads nobody records. */
  readonly #timed: boolean;
  readonly #redialing: boolean;
  readonly #labels: Readonly<Record<string, string>>;
  readonly #outcomeLabels: OutcomeLabels;
  readonly #links: Link[] = [];
  readonly #pending = new Map<number, PendingRequest>();
  readonly #incoming = new Map<number, IncomingRequest>();
  readonly #linkWaiters = new Set<LinkWaiter>();
  #unsent: PendingRequest[] = [];
  #queuedRequests: QueuedRequest[] = [];
  #queuedMessages: Envelope[] = [];
  #resolveClosed!: (error: DinferError | undefined) => void;
  #remoteAddress: string;
  #session: ConnectionSession | undefined;
  #open = true;
  #nextId = 1;
  #nextLink = 0;
  #requestHandler: RequestHandler | undefined;
  #messageHandler: MessageHandler | undefined;

  constructor(remoteAddress: string, options: RpcConnectionOptions = {}) {
    connectionCounter += 1;
    this.id = `conn-${connectionCounter}`;
    this.#remoteAddress = remoteAddress;
    this.#defaultTimeoutMs = checkTimeout(
      options.defaultTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS,
      'defaultTimeoutMs',
    );
    this.#maxQueued = options.maxQueued ?? 1024;
    this.#closeTimeoutMs = options.closeTimeoutMs ?? 2000;
    this.#logger = options.logger ?? silentLogger;
    this.#metrics = options.metrics ?? noopMetrics;
    this.#timed = this.#metrics !== noopMetrics;
    this.#redialing = options.redialing ?? false;
    const transport = options.transport ?? 'unknown';
    // Label objects are built once: they sit on the hot path.
    this.#labels = Object.freeze({ transport });
    this.#outcomeLabels = Object.freeze(
      Object.fromEntries(OUTCOMES.map((outcome) => [outcome, Object.freeze({ transport, outcome })])),
    ) as unknown as OutcomeLabels;
    this.closed = new Promise((resolve) => {
      this.#resolveClosed = resolve;
    });
  }

  get remoteAddress(): string {
    return this.#remoteAddress;
  }

  get isOpen(): boolean {
    return this.#open;
  }

  get session(): ConnectionSession | undefined {
    return this.#session;
  }

  /** Open links right now. */
  get linkCount(): number {
    return this.#links.length;
  }

  // ---- links -----------------------------------------------------------------------------

  /**
   * Adds a link (an authenticated channel to the same peer). With `session`, the link opens
   * a new session (after a redial), which becomes {@link RpcConnection.session}. Requests and
   * sends waiting for a link go out now.
   */
  attach(channel: FrameChannel, session?: ConnectionSession): void {
    if (!this.#open) {
      channel.close();
      return;
    }
    let resolveClosed!: () => void;
    const link: Link = {
      channel,
      open: true,
      closed: new Promise((resolve) => {
        resolveClosed = resolve;
      }),
    };
    this.#links.push(link);
    this.#remoteAddress = channel.remoteAddress;
    if (session !== undefined) this.#session = session;
    channel.onClose((error) => {
      resolveClosed();
      this.#lost(link, error);
    });
    channel.onEnvelope((envelope) => this.#receive(link, envelope));
    const unsent = this.#unsent;
    this.#unsent = [];
    for (const pending of unsent) {
      if (this.#pending.get(pending.id) === pending) this.#transmit(pending, this.#pick()!);
    }
    for (const waiter of [...this.#linkWaiters]) waiter.resolve();
  }

  #pick(): Link | undefined {
    const links = this.#links;
    if (links.length <= 1) return links[0];
    const link = links[this.#nextLink % links.length];
    this.#nextLink = (this.#nextLink + 1) % links.length;
    return link;
  }

  #lost(link: Link, error: DinferError | undefined): void {
    if (!link.open) return;
    link.open = false;
    const index = this.#links.indexOf(link);
    if (index >= 0) this.#links.splice(index, 1);
    if (!this.#open) return;
    const lost = new DinferError(
      DinferErrorCode.TRANSPORT_CLOSED,
      `link to ${link.channel.remoteAddress} lost${error === undefined ? '' : `: ${error.message}`}`,
      error === undefined
        ? { details: { remoteAddress: link.channel.remoteAddress } }
        : { cause: error, details: { remoteAddress: link.channel.remoteAddress } },
    );
    for (const pending of [...this.#pending.values()]) if (pending.link === link) pending.reject(lost);
    for (const [id, incoming] of this.#incoming) {
      if (incoming.link !== link) continue;
      incoming.abort(lost);
      this.#incoming.delete(id);
    }
    if (this.#queuedRequests.length > 0) {
      this.#queuedRequests = this.#queuedRequests.filter((queued) => queued.link !== link);
    }
    if (error !== undefined && error.code !== DinferErrorCode.TRANSPORT_CLOSED) {
      // The peer broke the protocol (or sent too much) on this link: the connection is done.
      this.#shutdown(error, true);
      return;
    }
    if (this.#links.length > 0 || this.#redialing) {
      this.#logger.warn(
        { connection: this.id, remoteAddress: link.channel.remoteAddress, links: this.#links.length },
        this.#links.length > 0 ? 'link dropped' : 'link dropped; reconnecting',
      );
      this.onLinkLost?.(this.#links.length);
      return;
    }
    this.#shutdown(error, false);
  }

  /** Drops one link as if it had been lost (the peer said it is going away). */
  #dropLink(link: Link, error: DinferError | undefined): void {
    link.channel.close();
    this.#lost(link, error ?? new DinferError(DinferErrorCode.TRANSPORT_CLOSED, 'peer is going away'));
  }

  /** Resolves once a link is attached; rejects after the default timeout, on abort or on close. */
  #waitForLink(signal: AbortSignal | undefined): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const timeoutMs = this.#defaultTimeoutMs;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const cleanup = (): void => {
        this.#linkWaiters.delete(waiter);
        if (timer !== undefined) clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      };
      const waiter: LinkWaiter = {
        resolve: () => {
          cleanup();
          resolve();
        },
        reject: (error) => {
          cleanup();
          reject(error);
        },
      };
      const onAbort = (): void => waiter.reject(this.#aborted(signal!, 'send aborted while reconnecting'));
      if (Number.isFinite(timeoutMs)) {
        timer = setTimeout(
          () =>
            waiter.reject(
              new DinferError(
                DinferErrorCode.TIMEOUT,
                `no link to ${this.remoteAddress} within ${timeoutMs} ms (reconnecting)`,
                { details: { remoteAddress: this.remoteAddress, timeoutMs } },
              ),
            ),
          timeoutMs,
        );
      }
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#linkWaiters.add(waiter);
    });
  }

  // ---- Connection ------------------------------------------------------------------------

  async send(message: Envelope, options: { signal?: AbortSignal | undefined } = {}): Promise<void> {
    checkEnvelope(message, 'message');
    const signal = options.signal;
    if (signal?.aborted) throw this.#aborted(signal, 'send aborted');
    if (!this.#open) throw this.#closedError('cannot send');
    if (this.#links.length === 0) await this.#waitForLink(signal);
    const link = this.#links[0];
    if (link === undefined || !this.#open) throw this.#closedError('cannot send');
    const sent = link.channel.send({
      header: { type: 'rpc', kind: 'message', body: message.header },
      attachments: message.attachments,
    });
    if (signal === undefined) {
      await sent.catch((error: unknown) => {
        throw asTransportError(error, 'send failed');
      });
      return;
    }
    await new Promise<void>((resolve, reject) => {
      const onAbort = () => reject(this.#aborted(signal, 'send aborted'));
      signal.addEventListener('abort', onAbort, { once: true });
      sent.then(
        () => {
          signal.removeEventListener('abort', onAbort);
          resolve();
        },
        (error: unknown) => {
          signal.removeEventListener('abort', onAbort);
          reject(asTransportError(error, 'send failed'));
        },
      );
    });
  }

  request(message: Envelope, options: RequestOptions = {}): Promise<Envelope> {
    try {
      checkEnvelope(message, 'request');
    } catch (error) {
      return Promise.reject(error);
    }
    const timeoutMs = options.timeoutMs === undefined ? this.#defaultTimeoutMs : options.timeoutMs;
    const signal = options.signal;
    return new Promise<Envelope>((resolve, reject) => {
      checkTimeout(timeoutMs, 'timeoutMs');
      if (signal?.aborted) throw this.#aborted(signal, 'request aborted');
      if (!this.#open) throw this.#closedError('cannot send a request');
      const id = this.#nextId++;
      const started = this.#timed ? performance.now() : 0;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const settle = (outcome: Outcome): boolean => {
        if (this.#pending.get(id) !== pending) return false;
        this.#pending.delete(id);
        if (timer !== undefined) clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.#metrics.increment('dinfer_transport_requests_total', this.#outcomeLabels[outcome]);
        if (outcome === 'ok' && this.#timed) {
          this.#metrics.observe(
            'dinfer_transport_request_duration_seconds',
            this.#labels,
            (performance.now() - started) / 1000,
          );
        }
        return true;
      };
      const onAbort = () => {
        if (settle('aborted')) {
          this.#cancel(pending);
          reject(this.#aborted(signal!, `request ${id} to ${this.remoteAddress} aborted`));
        }
      };
      const pending: PendingRequest = {
        id,
        message,
        link: undefined,
        resolve: (reply) => {
          if (settle('ok')) resolve(reply);
        },
        reject: (error) => {
          if (settle(error.code === DinferErrorCode.REMOTE ? 'remote_error' : 'failed')) reject(error);
        },
      };
      this.#pending.set(id, pending);
      if (Number.isFinite(timeoutMs)) {
        timer = setTimeout(() => {
          if (!settle('timeout')) return;
          const waited = pending.link === undefined ? ' waiting for a link (reconnecting)' : '';
          this.#cancel(pending);
          reject(
            new DinferError(
              DinferErrorCode.TIMEOUT,
              `request ${id} to ${this.remoteAddress} timed out after ${timeoutMs} ms${waited}`,
              { details: { id, timeoutMs, remoteAddress: this.remoteAddress } },
            ),
          );
        }, timeoutMs);
      }
      signal?.addEventListener('abort', onAbort, { once: true });
      const link = this.#pick();
      if (link === undefined) this.#unsent.push(pending);
      else this.#transmit(pending, link);
    });
  }

  onRequest(handler: RequestHandler): void {
    this.#requestHandler = handler;
    const queued = this.#queuedRequests;
    this.#queuedRequests = [];
    for (const item of queued) {
      if (item.link.open) this.#handleRequest(item.id, item.link, item.envelope, handler);
    }
  }

  onMessage(handler: MessageHandler): void {
    this.#messageHandler = handler;
    const queued = this.#queuedMessages;
    this.#queuedMessages = [];
    for (const message of queued) this.#deliverMessage(message, handler);
  }

  async close(reason?: DinferError): Promise<void> {
    const links = [...this.#links];
    this.#shutdown(reason, true);
    await this.#linksClosed(links);
  }

  /**
   * Closes for a listener that shuts down: the peer is told `DINFER_ERR_NOT_READY` (a
   * reconnecting dialer takes that as a dropped link and comes back), and this side closes
   * cleanly (`closed` resolves `undefined`).
   */
  async closeForRestart(): Promise<void> {
    const links = [...this.#links];
    this.#shutdown(
      undefined,
      true,
      new DinferError(DinferErrorCode.NOT_READY, 'the listener is shutting down'),
    );
    await this.#linksClosed(links);
  }

  async #linksClosed(links: readonly Link[]): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      Promise.all(links.map((link) => link.closed)),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, this.#closeTimeoutMs);
        timer.unref?.();
      }),
    ]);
    clearTimeout(timer);
    await this.closed;
  }

  // ---- internals -------------------------------------------------------------------------

  #transmit(pending: PendingRequest, link: Link): void {
    pending.link = link;
    link.channel
      .send({
        header: { type: 'rpc', kind: 'request', id: pending.id, body: pending.message.header },
        attachments: pending.message.attachments,
      })
      .catch((error: unknown) => {
        if (this.#pending.get(pending.id) === pending) {
          pending.reject(asTransportError(error, `request ${pending.id} could not be sent`));
        }
      });
  }

  #aborted(signal: AbortSignal, message: string): DinferError {
    return new DinferError(DinferErrorCode.ABORTED, message, { cause: signal.reason });
  }

  #closedError(message: string): DinferError {
    return new DinferError(
      DinferErrorCode.TRANSPORT_CLOSED,
      `${message}: connection to ${this.remoteAddress} is closed`,
    );
  }

  /** Tells the peer to stop working on a request that was sent (nothing is answered after). */
  #cancel(pending: PendingRequest): void {
    const link = pending.link;
    if (!this.#open || link === undefined || !link.open) return;
    link.channel
      .send({ header: { type: 'rpc', kind: 'cancel', id: pending.id }, attachments: [] })
      .catch(() => {});
  }

  #receive(link: Link, envelope: Envelope): void {
    if (!this.#open || !link.open) return;
    let header: RpcHeader;
    try {
      header = parseRpcHeader(envelope.header);
      if (
        (header.kind === 'cancel' || header.kind === 'close' || header.kind === 'error') &&
        envelope.attachments.length > 0
      ) {
        throw new DinferError(DinferErrorCode.PROTOCOL, `rpc ${header.kind} must not carry attachments`);
      }
    } catch (error) {
      this.#protocolFailure(error);
      return;
    }
    switch (header.kind) {
      case 'request': {
        if (this.#incoming.has(header.id) || this.#queuedRequests.some((q) => q.id === header.id)) {
          this.#protocolFailure(
            new DinferError(DinferErrorCode.PROTOCOL, `duplicate request id ${header.id}`),
          );
          return;
        }
        const request: Envelope = { header: header.body, attachments: envelope.attachments };
        if (this.#requestHandler !== undefined)
          this.#handleRequest(header.id, link, request, this.#requestHandler);
        else if (this.#queuedRequests.length < this.#maxQueued)
          this.#queuedRequests.push({ id: header.id, link, envelope: request });
        else
          this.#replyError(
            header.id,
            link,
            new DinferError(DinferErrorCode.OVERLOADED, 'no request handler installed and queue full'),
          );
        return;
      }
      case 'message': {
        const message: Envelope = { header: header.body, attachments: envelope.attachments };
        if (this.#messageHandler !== undefined) this.#deliverMessage(message, this.#messageHandler);
        else if (this.#queuedMessages.length < this.#maxQueued) this.#queuedMessages.push(message);
        else
          this.#logger.warn(
            { connection: this.id },
            'message dropped: no message handler installed and queue full',
          );
        return;
      }
      case 'response': {
        const pending = this.#pending.get(header.id);
        if (pending === undefined)
          this.#logger.debug({ id: header.id, connection: this.id }, 'late reply dropped');
        else pending.resolve({ header: header.body, attachments: envelope.attachments });
        return;
      }
      case 'error': {
        const pending = this.#pending.get(header.id);
        if (pending === undefined)
          this.#logger.debug({ id: header.id, connection: this.id }, 'late error reply dropped');
        else pending.reject(this.#remoteError(header.error));
        return;
      }
      case 'cancel': {
        // The one cancel rule: the requester has already given up, so nothing is answered.
        this.#incoming
          .get(header.id)
          ?.abort(new DinferError(DinferErrorCode.ABORTED, 'the requester cancelled the request'));
        const queued = this.#queuedRequests.findIndex((q) => q.id === header.id);
        if (queued >= 0) this.#queuedRequests.splice(queued, 1);
        return;
      }
      case 'close': {
        const error =
          header.error === undefined
            ? undefined
            : new DinferError(
                DinferErrorCode.TRANSPORT_CLOSED,
                `peer ${this.remoteAddress} closed the connection: ${header.error.code}: ${header.error.message}`,
                { details: { remoteCode: header.error.code, remoteMessage: header.error.message } },
              );
        // A listener shutting down asks reconnecting dialers to come back.
        if (this.#redialing && header.error?.code === DinferErrorCode.NOT_READY) this.#dropLink(link, error);
        else this.#shutdown(error, false);
        return;
      }
    }
  }

  #remoteError(error: RpcErrorBody): DinferError {
    return new DinferError(
      DinferErrorCode.REMOTE,
      `peer ${this.remoteAddress} answered with ${error.code}: ${error.message}`,
      {
        details: { remoteCode: error.code, remoteMessage: error.message, remoteAddress: this.remoteAddress },
      },
    );
  }

  #deliverMessage(message: Envelope, handler: MessageHandler): void {
    try {
      handler(message, this);
    } catch (error) {
      this.#logger.error({ connection: this.id, err: error }, 'message handler threw');
    }
  }

  #handleRequest(id: number, link: Link, request: Envelope, handler: RequestHandler): void {
    const context = new IncomingRequest(this, link);
    this.#incoming.set(id, context);
    let result: Promise<Envelope>;
    try {
      result = handler(request, context);
    } catch (error) {
      result = Promise.reject(error);
    }
    Promise.resolve(result).then(
      (reply) => {
        if (!this.#finishIncoming(id, context)) return;
        try {
          checkEnvelope(reply, 'a request handler reply');
        } catch (error) {
          this.#replyError(id, link, error);
          return;
        }
        link.channel
          .send({
            header: { type: 'rpc', kind: 'response', id, body: reply.header },
            attachments: reply.attachments,
          })
          .catch((error: unknown) => {
            if (isDinferError(error, DinferErrorCode.FRAME_TOO_LARGE)) this.#replyError(id, link, error);
          });
      },
      (error: unknown) => {
        if (this.#finishIncoming(id, context)) this.#replyError(id, link, error);
      },
    );
  }

  /** True when the reply to `id` should still be sent (not cancelled, link and connection open). */
  #finishIncoming(id: number, context: IncomingRequest): boolean {
    if (this.#incoming.get(id) === context) this.#incoming.delete(id);
    return this.#open && context.link.open && !context.aborted;
  }

  #replyError(id: number, link: Link, error: unknown): void {
    if (!this.#open || !link.open) return;
    link.channel
      .send({ header: { type: 'rpc', kind: 'error', id, error: toRpcError(error) }, attachments: [] })
      .catch(() => {});
  }

  #protocolFailure(error: unknown): void {
    const failure = isDinferError(error)
      ? error
      : new DinferError(DinferErrorCode.PROTOCOL, 'malformed envelope', { cause: error });
    this.#logger.warn(
      { connection: this.id, remoteAddress: this.remoteAddress, code: failure.code, err: failure.message },
      'protocol error; closing the connection',
    );
    this.#metrics.increment('dinfer_transport_protocol_errors_total', {
      ...this.#labels,
      code: failure.code,
    });
    this.#shutdown(failure, true);
  }

  /**
   * Closes for good: tells the peer (on every link, with `wire` as the reason) when `notify`,
   * closes the links, fails everything pending, and resolves `closed` with `error`.
   */
  #shutdown(error: DinferError | undefined, notify: boolean, wire: DinferError | undefined = error): void {
    if (!this.#open) return;
    this.#open = false;
    const links = this.#links.splice(0);
    const goodbye = (
      wire === undefined
        ? { type: 'rpc', kind: 'close' }
        : { type: 'rpc', kind: 'close', error: toRpcError(wire) }
    ) as MessageHeader;
    for (const link of links) {
      link.open = false;
      if (notify) link.channel.send({ header: goodbye, attachments: [] }).catch(() => {});
      link.channel.close(error);
    }
    const closedError = new DinferError(
      DinferErrorCode.TRANSPORT_CLOSED,
      `connection to ${this.remoteAddress} closed${error === undefined ? '' : `: ${error.message}`}`,
      error === undefined ? {} : { cause: error },
    );
    for (const pending of [...this.#pending.values()]) pending.reject(closedError);
    this.#unsent = [];
    for (const waiter of [...this.#linkWaiters]) waiter.reject(closedError);
    for (const incoming of this.#incoming.values()) incoming.abort(closedError);
    this.#incoming.clear();
    this.#queuedRequests = [];
    this.#queuedMessages = [];
    this.#metrics.increment('dinfer_transport_connections_closed_total', {
      ...this.#labels,
      reason: error?.code ?? 'clean',
    });
    this.#logger.debug(
      { connection: this.id, remoteAddress: this.remoteAddress, reason: error?.code },
      'connection closed',
    );
    this.#resolveClosed(error);
  }
}
