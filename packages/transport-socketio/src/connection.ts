/**
 * The {@link Connection} both ends of a Socket.IO link hand out: requests ride on socket.io
 * acks, one-way messages on an event, cancellation on another. A connection outlives a link
 * when the dialer reconnects: the owner detaches the dead socket and attaches the new one
 * after the handshake has run again.
 *
 * @module
 */
import {
  type Connection,
  DinferError,
  DinferErrorCode,
  type Envelope,
  isDinferError,
  isRecord,
  type MessageHandler,
  noopMetrics,
  type RequestContext,
  type RequestHandler,
  type RequestOptions,
} from '@dinfer/core';
import { SocketIoEvent, type WireError, type WireReply } from './events.js';
import type { ResolvedOptions } from './options.js';
import {
  checkOutgoing,
  expectArgs,
  readAttachments,
  readHeader,
  readId,
  readWireError,
  toWireError,
} from './validate.js';

/** The socket.io socket a connection currently talks through (either side). */
export interface SocketLink {
  /** Emits an event with its arguments (a trailing function becomes an ack callback). */
  emit(event: string, args: unknown[]): void;
  /** Resolves when the link can take more data, or `undefined` when it can now. */
  writable(): Promise<void> | undefined;
}

/** What the owner (listener or dialer) supplies when creating a connection. */
export interface ConnectionInit {
  readonly remoteAddress: string;
  readonly options: ResolvedOptions;
  /** Tears the socket.io socket down for good; called once, when the connection closes. */
  readonly shutdown: () => void;
}

interface PendingRequest {
  readonly id: number;
  readonly message: Envelope;
  /** Link epoch the request went out on; -1 while it waits for a link. */
  sentEpoch: number;
  resolve(reply: Envelope): void;
  reject(error: DinferError): void;
}

interface QueuedRequest {
  readonly id: number;
  readonly envelope: Envelope;
  readonly ack: (reply: WireReply) => void;
  readonly epoch: number;
}

type Ack = (reply: WireReply) => void;

const MAX_QUEUED = 1024;
let connectionCounter = 0;

// Label objects are shared, not rebuilt per call: these sit on the hot path.
const LABELS = Object.freeze({ transport: 'socketio' });
const OUTCOME_LABELS: Readonly<Record<string, Readonly<Record<string, string>>>> = Object.freeze(
  Object.fromEntries(
    ['ok', 'remote_error', 'failed', 'timeout', 'aborted'].map((outcome) => [
      outcome,
      Object.freeze({ transport: 'socketio', outcome }),
    ]),
  ),
);

/**
 * What a request handler gets as `context`. The AbortController behind `signal` is only
 * created if the handler reads `signal` (most never do, and creating one per request is a
 * measurable share of a small request's cost).
 */
class IncomingRequest implements RequestContext {
  readonly connection: Connection;
  #controller: AbortController | undefined;
  #abortReason: DinferError | undefined;

  constructor(connection: Connection) {
    this.connection = connection;
  }

  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController();
      if (this.#abortReason !== undefined) this.#controller.abort(this.#abortReason);
    }
    return this.#controller.signal;
  }

  get aborted(): boolean {
    return this.#abortReason !== undefined;
  }

  abort(reason: DinferError): void {
    if (this.#abortReason !== undefined) return;
    this.#abortReason = reason;
    this.#controller?.abort(reason);
  }
}

function aborted(signal: AbortSignal, message: string): DinferError {
  return new DinferError(DinferErrorCode.ABORTED, message, { cause: signal.reason });
}

/** A dinfer {@link Connection} over socket.io events and acks. */
export class SocketIoConnection implements Connection {
  readonly id: string;
  readonly remoteAddress: string;
  readonly closed: Promise<DinferError | undefined>;

  readonly #options: ResolvedOptions;
  readonly #shutdownLink: () => void;
  /** False with the no-op metrics: skips clock reads nobody records. */
  readonly #timed: boolean;
  readonly #pending = new Map<number, PendingRequest>();
  readonly #incoming = new Map<number, IncomingRequest>();
  readonly #queuedRequests: QueuedRequest[] = [];
  readonly #queuedMessages: Envelope[] = [];
  readonly #linkWaiters = new Set<{ resolve: () => void; reject: (error: DinferError) => void }>();
  #resolveClosed!: (error: DinferError | undefined) => void;
  #link: SocketLink | undefined;
  #epoch = 0;
  #open = true;
  #nextId = 1;
  #requestHandler: RequestHandler | undefined;
  #messageHandler: MessageHandler | undefined;

  constructor(init: ConnectionInit) {
    connectionCounter += 1;
    this.id = `socketio-${connectionCounter}`;
    this.remoteAddress = init.remoteAddress;
    this.#options = init.options;
    this.#shutdownLink = init.shutdown;
    this.#timed = init.options.metrics !== noopMetrics;
    this.closed = new Promise((resolve) => {
      this.#resolveClosed = resolve;
    });
  }

  get isOpen(): boolean {
    return this.#open;
  }

  /** True while a live, authenticated socket is attached. */
  get isLinked(): boolean {
    return this.#link !== undefined;
  }

  // ---- owner side ------------------------------------------------------------------------

  /** Attaches an authenticated socket; requests waiting for a link go out now. */
  attach(link: SocketLink): void {
    if (!this.#open) return;
    this.#link = link;
    this.#epoch += 1;
    for (const pending of this.#pending.values()) {
      if (pending.sentEpoch === -1) this.#emitRequest(pending, link);
    }
    for (const waiter of [...this.#linkWaiters]) waiter.resolve();
    this.#linkWaiters.clear();
  }

  /**
   * The link dropped but may come back (a reconnecting dialer): requests in flight on it fail
   * with `DINFER_ERR_TRANSPORT_CLOSED`, handlers of incoming requests see their signal abort,
   * and new calls wait for the next {@link attach}.
   */
  detach(reason: string): void {
    if (!this.#open || this.#link === undefined) return;
    this.#link = undefined;
    this.#epoch += 1;
    const error = new DinferError(
      DinferErrorCode.TRANSPORT_CLOSED,
      `link to ${this.remoteAddress} dropped (${reason}); reconnecting`,
      { details: { reason, remoteAddress: this.remoteAddress } },
    );
    for (const pending of [...this.#pending.values()]) {
      if (pending.sentEpoch !== -1) pending.reject(error);
    }
    for (const incoming of this.#incoming.values()) incoming.abort(error);
    this.#incoming.clear();
    this.#queuedRequests.length = 0;
    this.#options.logger.warn(
      { connection: this.id, remoteAddress: this.remoteAddress, reason },
      'socket.io link dropped',
    );
  }

  /** The link is gone for good (peer left, link lost without reconnection): closes without a `bye`. */
  terminate(error: DinferError | undefined): void {
    this.#shutdown(error, false);
  }

  /** Handles one incoming event on the attached link; any malformed payload closes the connection. */
  dispatch(event: string, args: unknown[]): void {
    if (!this.#open) return;
    try {
      switch (event) {
        case SocketIoEvent.MESSAGE:
          this.#onMessage(args);
          return;
        case SocketIoEvent.REQUEST:
          this.#onRequest(args);
          return;
        case SocketIoEvent.CANCEL:
          this.#onCancel(args);
          return;
        case SocketIoEvent.BYE:
          this.#onBye(args);
          return;
        default:
          throw new DinferError(
            DinferErrorCode.PROTOCOL,
            `unexpected socket.io event "${String(event).slice(0, 64)}"`,
          );
      }
    } catch (error) {
      this.protocolFailure(error);
    }
  }

  /** Logs a typed protocol error and closes the connection, telling the peer why. */
  protocolFailure(error: unknown): void {
    const failure = isDinferError(error)
      ? error
      : new DinferError(DinferErrorCode.PROTOCOL, 'malformed socket.io event', { cause: error });
    this.#options.logger.warn(
      { connection: this.id, remoteAddress: this.remoteAddress, code: failure.code, err: failure.message },
      'socket.io protocol violation; disconnecting',
    );
    this.#options.metrics.increment('dinfer_transport_protocol_errors_total', {
      transport: 'socketio',
      code: failure.code,
    });
    this.#shutdown(failure, true);
  }

  // ---- Connection ------------------------------------------------------------------------

  async send(message: Envelope, options: { signal?: AbortSignal | undefined } = {}): Promise<void> {
    const bytes = checkOutgoing(message, this.#options, 'message');
    const signal = options.signal;
    if (signal?.aborted) throw aborted(signal, 'send aborted');
    if (!this.#open) throw this.#closedError('cannot send');
    let link = this.#link;
    if (link === undefined) {
      await this.#waitForLink(signal, this.#options.defaultRequestTimeoutMs);
      link = this.#link;
      if (link === undefined) throw this.#closedError('cannot send');
    }
    link.emit(SocketIoEvent.MESSAGE, [message.header, message.attachments]);
    this.#options.metrics.increment('dinfer_transport_sent_bytes_total', LABELS, bytes);
    const writable = link.writable();
    if (writable === undefined) return;
    if (signal === undefined) return writable;
    await new Promise<void>((resolve, reject) => {
      const onAbort = (): void => reject(aborted(signal, 'send aborted while waiting for the link to drain'));
      signal.addEventListener('abort', onAbort, { once: true });
      writable.then(() => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      });
    });
  }

  request(message: Envelope, options: RequestOptions = {}): Promise<Envelope> {
    const signal = options.signal;
    const timeoutMs = options.timeoutMs ?? this.#options.defaultRequestTimeoutMs;
    try {
      checkOutgoing(message, this.#options, 'request');
      if (typeof timeoutMs !== 'number' || Number.isNaN(timeoutMs) || timeoutMs <= 0) {
        throw new DinferError(
          DinferErrorCode.INVALID_ARGUMENT,
          'timeoutMs must be a positive number of ms or Infinity',
        );
      }
      if (signal?.aborted) throw aborted(signal, 'request aborted');
      if (!this.#open) throw this.#closedError('cannot send a request');
    } catch (error) {
      return Promise.reject(error);
    }
    return new Promise<Envelope>((resolve, reject) => {
      const id = this.#nextId++;
      const started = this.#timed ? performance.now() : 0;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const settle = (outcome: string): boolean => {
        if (this.#pending.get(id) !== pending) return false;
        this.#pending.delete(id);
        if (timer !== undefined) clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        const metrics = this.#options.metrics;
        metrics.increment('dinfer_transport_requests_total', OUTCOME_LABELS[outcome]);
        if (outcome === 'ok' && this.#timed) {
          metrics.observe(
            'dinfer_transport_request_duration_seconds',
            LABELS,
            (performance.now() - started) / 1000,
          );
        }
        return true;
      };
      const onAbort = (): void => {
        const wasSent = pending.sentEpoch === this.#epoch && this.#link !== undefined;
        if (settle('aborted')) {
          if (wasSent) this.#cancel(id);
          reject(aborted(signal as AbortSignal, `request ${id} to ${this.remoteAddress} aborted`));
        }
      };
      const pending: PendingRequest = {
        id,
        message,
        sentEpoch: -1,
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
          const wasSent = pending.sentEpoch === this.#epoch && this.#link !== undefined;
          if (!settle('timeout')) return;
          if (wasSent) this.#cancel(id);
          reject(
            new DinferError(
              DinferErrorCode.TIMEOUT,
              `request ${id} to ${this.remoteAddress} timed out after ${timeoutMs} ms`,
              { details: { id, timeoutMs, remoteAddress: this.remoteAddress } },
            ),
          );
        }, timeoutMs);
      }
      signal?.addEventListener('abort', onAbort, { once: true });
      if (this.#link !== undefined) this.#emitRequest(pending, this.#link);
    });
  }

  onRequest(handler: RequestHandler): void {
    this.#requestHandler = handler;
    for (const item of this.#queuedRequests.splice(0)) this.#handleRequest(item, handler);
  }

  onMessage(handler: MessageHandler): void {
    this.#messageHandler = handler;
    for (const message of this.#queuedMessages.splice(0)) this.#deliver(message, handler);
  }

  async close(reason?: DinferError): Promise<void> {
    this.#shutdown(reason, true);
    await this.closed;
  }

  // ---- internals -------------------------------------------------------------------------

  #emitRequest(pending: PendingRequest, link: SocketLink): void {
    const epoch = this.#epoch;
    pending.sentEpoch = epoch;
    const { header, attachments } = pending.message;
    const ack: Ack = (reply) => this.#onReply(pending, epoch, reply);
    link.emit(SocketIoEvent.REQUEST, [pending.id, header, attachments, ack]);
  }

  #onReply(pending: PendingRequest, epoch: number, reply: unknown): void {
    if (!this.#open || epoch !== this.#epoch) return;
    let outcome: Envelope | WireError;
    try {
      outcome = this.#readReply(reply);
    } catch (error) {
      this.protocolFailure(error);
      return;
    }
    if (this.#pending.get(pending.id) !== pending) return; // timed out or aborted meanwhile
    if ('code' in outcome) {
      pending.reject(
        new DinferError(
          DinferErrorCode.REMOTE,
          `peer ${this.remoteAddress} answered with ${outcome.code}: ${outcome.message}`,
          {
            details: {
              remoteCode: outcome.code,
              remoteMessage: outcome.message,
              remoteAddress: this.remoteAddress,
            },
          },
        ),
      );
    } else {
      this.#received(outcome);
      pending.resolve(outcome);
    }
  }

  #readReply(reply: unknown): Envelope | WireError {
    if (!isRecord(reply))
      throw new DinferError(DinferErrorCode.PROTOCOL, 'request ack: reply must be an object');
    const keys = Object.keys(reply);
    if (keys.length === 1 && keys[0] === 'error') return readWireError(reply.error, 'request ack');
    if (keys.length !== 2 || !('header' in reply) || !('attachments' in reply)) {
      throw new DinferError(
        DinferErrorCode.PROTOCOL,
        'request ack: reply must be { header, attachments } or { error }',
      );
    }
    return {
      header: readHeader(reply.header, 'request ack'),
      attachments: readAttachments(reply.attachments, this.#options, 'request ack'),
    };
  }

  #onMessage(args: unknown[]): void {
    expectArgs(args, 2, 'message');
    const envelope: Envelope = {
      header: readHeader(args[0], 'message'),
      attachments: readAttachments(args[1], this.#options, 'message'),
    };
    this.#received(envelope);
    const handler = this.#messageHandler;
    if (handler !== undefined) this.#deliver(envelope, handler);
    else if (this.#queuedMessages.length < MAX_QUEUED) this.#queuedMessages.push(envelope);
    else
      this.#options.logger.warn(
        { connection: this.id },
        'message dropped: no message handler installed and queue full',
      );
  }

  #onRequest(args: unknown[]): void {
    expectArgs(args, 4, 'request');
    const id = readId(args[0], 'request');
    const ack = args[3];
    if (typeof ack !== 'function')
      throw new DinferError(DinferErrorCode.PROTOCOL, 'request: sent without an ack');
    const envelope: Envelope = {
      header: readHeader(args[1], 'request'),
      attachments: readAttachments(args[2], this.#options, 'request'),
    };
    if (this.#incoming.has(id) || this.#queuedRequests.some((q) => q.id === id)) {
      throw new DinferError(DinferErrorCode.PROTOCOL, `request: duplicate id ${id}`);
    }
    this.#received(envelope);
    const item: QueuedRequest = { id, envelope, ack: ack as Ack, epoch: this.#epoch };
    const handler = this.#requestHandler;
    if (handler !== undefined) this.#handleRequest(item, handler);
    else if (this.#queuedRequests.length < MAX_QUEUED) this.#queuedRequests.push(item);
    else
      item.ack({
        error: toWireError(
          new DinferError(DinferErrorCode.OVERLOADED, 'no request handler installed and queue full'),
        ),
      });
  }

  #onCancel(args: unknown[]): void {
    expectArgs(args, 1, 'cancel');
    const id = readId(args[0], 'cancel');
    this.#incoming
      .get(id)
      ?.abort(new DinferError(DinferErrorCode.ABORTED, 'the requester cancelled the request'));
    const queued = this.#queuedRequests.findIndex((q) => q.id === id);
    if (queued >= 0) {
      const [item] = this.#queuedRequests.splice(queued, 1);
      item?.ack({
        error: { code: DinferErrorCode.ABORTED, message: 'cancelled before a handler was installed' },
      });
    }
  }

  #onBye(args: unknown[]): void {
    if (args.length > 1) throw new DinferError(DinferErrorCode.PROTOCOL, 'bye: expected at most 1 argument');
    const wire = args.length === 1 ? readWireError(args[0], 'bye') : undefined;
    const error =
      wire === undefined
        ? undefined
        : new DinferError(
            DinferErrorCode.TRANSPORT_CLOSED,
            `peer ${this.remoteAddress} closed the connection: ${wire.code}: ${wire.message}`,
            { details: { remoteCode: wire.code, remoteMessage: wire.message } },
          );
    this.#shutdown(error, false);
  }

  #received(envelope: Envelope): void {
    let bytes = 0;
    for (const part of envelope.attachments) bytes += part.byteLength;
    this.#options.metrics.increment('dinfer_transport_received_bytes_total', LABELS, bytes);
  }

  #deliver(message: Envelope, handler: MessageHandler): void {
    try {
      handler(message, this);
    } catch (error) {
      this.#options.logger.error({ connection: this.id, err: error }, 'message handler threw');
    }
  }

  #handleRequest(item: QueuedRequest, handler: RequestHandler): void {
    const context = new IncomingRequest(this);
    this.#incoming.set(item.id, context);
    const finish = (reply: WireReply): void => {
      if (this.#incoming.get(item.id) === context) this.#incoming.delete(item.id);
      // A reply only goes back on the link the request came in on.
      if (this.#open && item.epoch === this.#epoch) item.ack(reply);
    };
    const fail = (error: unknown): void => finish({ error: toWireError(error) });
    const succeed = (reply: Envelope): void => {
      if (context.aborted) {
        finish({ error: { code: DinferErrorCode.ABORTED, message: 'request was cancelled' } });
        return;
      }
      try {
        checkOutgoing(reply, this.#options, 'request handler reply');
      } catch (error) {
        fail(error);
        return;
      }
      finish({ header: reply.header, attachments: reply.attachments });
    };
    let result: Promise<Envelope>;
    try {
      result = handler(item.envelope, context);
    } catch (error) {
      fail(error);
      return;
    }
    Promise.resolve(result).then(succeed, fail);
  }

  #cancel(id: number): void {
    this.#link?.emit(SocketIoEvent.CANCEL, [id]);
  }

  #waitForLink(signal: AbortSignal | undefined, timeoutMs: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const cleanup = (): void => {
        this.#linkWaiters.delete(waiter);
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      };
      const waiter = {
        resolve: () => {
          cleanup();
          resolve();
        },
        reject: (error: DinferError) => {
          cleanup();
          reject(error);
        },
      };
      const onAbort = (): void =>
        waiter.reject(aborted(signal as AbortSignal, 'send aborted while reconnecting'));
      const timer = setTimeout(
        () =>
          waiter.reject(
            new DinferError(
              DinferErrorCode.TIMEOUT,
              `no link to ${this.remoteAddress} within ${timeoutMs} ms`,
            ),
          ),
        timeoutMs,
      );
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#linkWaiters.add(waiter);
    });
  }

  #closedError(message: string): DinferError {
    return new DinferError(
      DinferErrorCode.TRANSPORT_CLOSED,
      `${message}: connection to ${this.remoteAddress} is closed`,
    );
  }

  #shutdown(error: DinferError | undefined, notifyPeer: boolean): void {
    if (!this.#open) return;
    this.#open = false;
    const link = this.#link;
    this.#link = undefined;
    this.#epoch += 1;
    if (notifyPeer && link !== undefined)
      link.emit(SocketIoEvent.BYE, error === undefined ? [] : [toWireError(error)]);
    try {
      this.#shutdownLink();
    } catch (cause) {
      this.#options.logger.warn({ connection: this.id, err: cause }, 'socket.io disconnect threw');
    }
    const closedError = new DinferError(
      DinferErrorCode.TRANSPORT_CLOSED,
      `connection to ${this.remoteAddress} closed${error === undefined ? '' : `: ${error.message}`}`,
      error === undefined ? {} : { cause: error },
    );
    for (const pending of [...this.#pending.values()]) pending.reject(closedError);
    for (const waiter of [...this.#linkWaiters]) waiter.reject(closedError);
    for (const incoming of this.#incoming.values()) incoming.abort(closedError);
    this.#incoming.clear();
    this.#queuedRequests.length = 0;
    this.#queuedMessages.length = 0;
    this.#options.metrics.increment('dinfer_transport_connections_closed_total', {
      transport: 'socketio',
      reason: error?.code ?? 'clean',
    });
    this.#resolveClosed(error);
  }
}
