/**
 * A complete {@link Connection} on top of any {@link FrameChannel}: request ids, many requests
 * in flight, replies matched by id, ordered one-way messages, remote errors, timeouts,
 * cancellation and close semantics. Transports only move envelopes; this holds the rest.
 *
 * @module
 */
import { DinferError, DinferErrorCode, isDinferError } from '../errors.js';
import { type Logger, silentLogger } from '../logger.js';
import { type Metrics, noopMetrics } from '../metrics.js';
import type { Envelope, MessageHeader } from '../transport.js';
import type { Connection, MessageHandler, RequestHandler, RequestOptions } from './connection.js';
import type { FrameChannel } from './frame-channel.js';
import { parseRpcHeader, type RpcErrorBody, type RpcHeader, toRpcError } from './rpc-header.js';

/** Options for {@link createChannelConnection}. */
export interface ChannelConnectionOptions {
  /** Timeout of a request that names none, in ms; `Infinity` for none. Default 30 000. */
  defaultTimeoutMs?: number | undefined;
  /** Incoming requests and messages held while no handler is installed. Default 1024. */
  maxQueued?: number | undefined;
  /** How long `close()` waits for the channel to report it closed, in ms. Default 2000. */
  closeTimeoutMs?: number | undefined;
  /** Receives protocol errors and dropped messages (debug: closes, late replies). Default silent. */
  logger?: Logger | undefined;
  /**
   * Receives `dinfer_transport_requests_total{outcome}`,
   * `dinfer_transport_request_duration_seconds` and
   * `dinfer_transport_connections_closed_total{reason}`. Default no-op.
   */
  metrics?: Metrics | undefined;
}

/** Default request timeout, in ms. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;

let connectionCounter = 0;

interface PendingRequest {
  readonly resolve: (reply: Envelope) => void;
  readonly reject: (error: DinferError) => void;
}

interface QueuedRequest {
  readonly id: number;
  readonly envelope: Envelope;
}

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

class ChannelConnection implements Connection {
  readonly id: string;
  readonly remoteAddress: string;
  readonly closed: Promise<DinferError | undefined>;

  readonly #channel: FrameChannel;
  readonly #defaultTimeoutMs: number;
  readonly #maxQueued: number;
  readonly #closeTimeoutMs: number;
  readonly #logger: Logger;
  readonly #metrics: Metrics;
  readonly #pending = new Map<number, PendingRequest>();
  readonly #incoming = new Map<number, AbortController>();
  readonly #queuedRequests: QueuedRequest[] = [];
  readonly #queuedMessages: Envelope[] = [];
  readonly #channelClosed: Promise<void>;
  #resolveClosed!: (error: DinferError | undefined) => void;
  #open = true;
  #nextId = 1;
  #requestHandler: RequestHandler | undefined;
  #messageHandler: MessageHandler | undefined;

  constructor(channel: FrameChannel, options: ChannelConnectionOptions) {
    connectionCounter += 1;
    this.id = `conn-${connectionCounter}`;
    this.remoteAddress = channel.remoteAddress;
    this.#channel = channel;
    this.#defaultTimeoutMs = checkTimeout(
      options.defaultTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS,
      'defaultTimeoutMs',
    );
    this.#maxQueued = options.maxQueued ?? 1024;
    this.#closeTimeoutMs = options.closeTimeoutMs ?? 2000;
    this.#logger = options.logger ?? silentLogger;
    this.#metrics = options.metrics ?? noopMetrics;
    this.closed = new Promise((resolve) => {
      this.#resolveClosed = resolve;
    });
    this.#channelClosed = new Promise((resolve) => {
      channel.onClose((error) => {
        this.#shutdown(error, false);
        resolve();
      });
    });
    channel.onEnvelope((envelope) => this.#receive(envelope));
  }

  get isOpen(): boolean {
    return this.#open;
  }

  async send(message: Envelope, options: { signal?: AbortSignal | undefined } = {}): Promise<void> {
    checkEnvelope(message, 'message');
    const signal = options.signal;
    if (signal?.aborted) throw this.#aborted(signal, 'send aborted');
    if (!this.#open) throw this.#closedError('cannot send');
    const sent = this.#channel.send({
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
      const started = performance.now();
      let timer: ReturnType<typeof setTimeout> | undefined;
      const onAbort = () => {
        if (settle()) {
          this.#cancel(id);
          reject(this.#aborted(signal!, `request ${id} aborted`));
        }
      };
      const settle = (outcome?: string): boolean => {
        if (!this.#pending.has(id)) return false;
        this.#pending.delete(id);
        if (timer !== undefined) clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.#metrics.increment('dinfer_transport_requests_total', { outcome: outcome ?? 'failed' });
        if (outcome === 'ok') {
          this.#metrics.observe(
            'dinfer_transport_request_duration_seconds',
            {},
            (performance.now() - started) / 1000,
          );
        }
        return true;
      };
      this.#pending.set(id, {
        resolve: (reply) => {
          if (settle('ok')) resolve(reply);
        },
        reject: (error) => {
          if (settle(error.code === DinferErrorCode.REMOTE ? 'remote_error' : 'failed')) reject(error);
        },
      });
      if (Number.isFinite(timeoutMs)) {
        timer = setTimeout(() => {
          if (settle('timeout')) {
            this.#cancel(id);
            reject(
              new DinferError(
                DinferErrorCode.TIMEOUT,
                `request ${id} to ${this.remoteAddress} timed out after ${timeoutMs} ms`,
                {
                  details: { id, timeoutMs, remoteAddress: this.remoteAddress },
                },
              ),
            );
          }
        }, timeoutMs);
      }
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#channel
        .send({
          header: { type: 'rpc', kind: 'request', id, body: message.header },
          attachments: message.attachments,
        })
        .catch((error: unknown) => {
          this.#pending.get(id)?.reject(asTransportError(error, `request ${id} could not be sent`));
        });
    });
  }

  onRequest(handler: RequestHandler): void {
    this.#requestHandler = handler;
    for (const item of this.#queuedRequests.splice(0)) this.#handleRequest(item.id, item.envelope, handler);
  }

  onMessage(handler: MessageHandler): void {
    this.#messageHandler = handler;
    for (const message of this.#queuedMessages.splice(0)) this.#deliverMessage(message, handler);
  }

  async close(reason?: DinferError): Promise<void> {
    this.#shutdown(reason, true);
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      this.#channelClosed,
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, this.#closeTimeoutMs);
        timer.unref?.();
      }),
    ]);
    clearTimeout(timer);
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

  #cancel(id: number): void {
    if (!this.#open) return;
    this.#channel.send({ header: { type: 'rpc', kind: 'cancel', id }, attachments: [] }).catch(() => {});
  }

  #receive(envelope: Envelope): void {
    if (!this.#open) return;
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
        if (this.#requestHandler !== undefined) this.#handleRequest(header.id, request, this.#requestHandler);
        else if (this.#queuedRequests.length < this.#maxQueued)
          this.#queuedRequests.push({ id: header.id, envelope: request });
        else
          this.#replyError(
            header.id,
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
        this.#shutdown(error, false);
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

  #handleRequest(id: number, request: Envelope, handler: RequestHandler): void {
    const controller = new AbortController();
    this.#incoming.set(id, controller);
    const context = { signal: controller.signal, connection: this as Connection };
    Promise.resolve()
      .then(() => handler(request, context))
      .then(
        (reply) => {
          if (!this.#finishIncoming(id, controller)) return;
          checkEnvelope(reply, 'a request handler reply');
          this.#channel
            .send({
              header: { type: 'rpc', kind: 'response', id, body: reply.header },
              attachments: reply.attachments,
            })
            .catch((error: unknown) => {
              if (isDinferError(error, DinferErrorCode.FRAME_TOO_LARGE)) this.#replyError(id, error);
            });
        },
        (error: unknown) => {
          if (!this.#finishIncoming(id, controller)) return;
          this.#replyError(id, error);
        },
      )
      .catch((error: unknown) => this.#replyError(id, error));
  }

  /** True when the reply to `id` should still be sent (not cancelled, connection open). */
  #finishIncoming(id: number, controller: AbortController): boolean {
    if (this.#incoming.get(id) === controller) this.#incoming.delete(id);
    return this.#open && !controller.signal.aborted;
  }

  #replyError(id: number, error: unknown): void {
    if (!this.#open) return;
    this.#channel
      .send({ header: { type: 'rpc', kind: 'error', id, error: toRpcError(error) }, attachments: [] })
      .catch(() => {});
  }

  #protocolFailure(error: unknown): void {
    const failure = isDinferError(error)
      ? error
      : new DinferError(DinferErrorCode.PROTOCOL, 'malformed envelope', { cause: error });
    this.#logger.warn(
      { connection: this.id, remoteAddress: this.remoteAddress, err: failure.message },
      'protocol error',
    );
    this.#shutdown(failure, true);
  }

  #shutdown(error: DinferError | undefined, notifyPeer: boolean): void {
    if (!this.#open) return;
    this.#open = false;
    if (notifyPeer) {
      const header =
        error === undefined
          ? { type: 'rpc', kind: 'close' }
          : { type: 'rpc', kind: 'close', error: toRpcError(error) };
      this.#channel.send({ header: header as MessageHeader, attachments: [] }).catch(() => {});
    }
    this.#channel.close(error);
    const closedError = new DinferError(
      DinferErrorCode.TRANSPORT_CLOSED,
      `connection to ${this.remoteAddress} closed${error === undefined ? '' : `: ${error.message}`}`,
      error === undefined ? {} : { cause: error },
    );
    for (const pending of [...this.#pending.values()]) pending.reject(closedError);
    for (const controller of this.#incoming.values()) controller.abort(closedError);
    this.#incoming.clear();
    this.#queuedRequests.length = 0;
    this.#queuedMessages.length = 0;
    this.#metrics.increment('dinfer_transport_connections_closed_total', { reason: error?.code ?? 'clean' });
    this.#logger.debug(
      { connection: this.id, remoteAddress: this.remoteAddress, reason: error?.code },
      'connection closed',
    );
    this.#resolveClosed(error);
  }
}

/**
 * Builds a full {@link Connection} on an (already authenticated) {@link FrameChannel}. The
 * connection takes the channel over: it installs the channel's envelope and close handlers.
 *
 * Semantics: requests get ids and are matched to replies, any number in flight; one-way
 * messages reach the peer's message handler in order; a handler that throws makes the
 * request reject with `DINFER_ERR_REMOTE` (`details.remoteCode`/`remoteMessage` carry the
 * peer's error); timeouts reject with `DINFER_ERR_TIMEOUT` and aborts with
 * `DINFER_ERR_ABORTED`, and both tell the peer to cancel so its handler's `context.signal`
 * aborts; a close from either side (or the link dropping) rejects every pending request with
 * `DINFER_ERR_TRANSPORT_CLOSED`. Requests and messages arriving before a handler is
 * installed are held (up to `maxQueued`). An invalid header closes the connection with
 * `DINFER_ERR_PROTOCOL`.
 */
export function createChannelConnection(
  channel: FrameChannel,
  options: ChannelConnectionOptions = {},
): Connection {
  return new ChannelConnection(channel, options);
}
