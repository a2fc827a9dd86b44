/**
 * The bookkeeping every {@link FrameChannel} implementation shares, so a transport writes only
 * how bytes move: incoming envelopes delivered in order (queued until a handler is set),
 * close handlers run exactly once, a consumer that throws costs that channel only.
 *
 * @module
 */
import { DinferError, DinferErrorCode } from '../errors.js';
import { type Logger, silentLogger } from '../logger.js';
import type { Envelope } from '../transport.js';
import type { FrameChannel } from './frame-channel.js';

/** What {@link ChannelEvents} needs from its channel. */
export interface ChannelEventsOptions {
  /** The peer's address, for logs. */
  readonly remoteAddress: string;
  /** Called when the envelope handler throws: the channel should close with `error`. */
  readonly onHandlerError: (error: DinferError) => void;
  /** Receives handler and close-handler failures. Default silent. */
  readonly logger?: Logger | undefined;
}

/**
 * Delivery and close state of one channel. A transport's channel keeps one, forwards its
 * `onEnvelope` / `onClose` to it, feeds it with {@link ChannelEvents.deliver} and ends it with
 * {@link ChannelEvents.finish}.
 */
export class ChannelEvents implements Pick<FrameChannel, 'onEnvelope' | 'onClose'> {
  readonly #options: ChannelEventsOptions;
  readonly #logger: Logger;
  #handler: ((envelope: Envelope) => void) | undefined;
  #queued: Envelope[] = [];
  #closeHandlers: Array<(error: DinferError | undefined) => void> = [];
  #closed = false;
  #closeError: DinferError | undefined;

  constructor(options: ChannelEventsOptions) {
    this.#options = options;
    this.#logger = options.logger ?? silentLogger;
  }

  /** True once the channel has closed. */
  get closed(): boolean {
    return this.#closed;
  }

  /** The error the channel closed with (`undefined` while open or after a clean close). */
  get closeError(): DinferError | undefined {
    return this.#closeError;
  }

  /** The error for a `send` on the closed channel. */
  closedError(): DinferError {
    return (
      this.#closeError ??
      new DinferError(
        DinferErrorCode.TRANSPORT_CLOSED,
        `connection to ${this.#options.remoteAddress} is closed`,
      )
    );
  }

  /** Hands an incoming envelope to the handler, or queues it until one is set. Ignored once closed. */
  deliver(envelope: Envelope): void {
    if (this.#closed) return;
    const handler = this.#handler;
    if (handler === undefined) this.#queued.push(envelope);
    else this.#call(handler, envelope);
  }

  /** Sets the envelope handler; what was queued is delivered to it now, in order. */
  onEnvelope(handler: (envelope: Envelope) => void): void {
    this.#handler = handler;
    if (this.#queued.length === 0) return;
    const queued = this.#queued;
    this.#queued = [];
    for (const envelope of queued) {
      if (this.#closed) return;
      this.#call(handler, envelope);
    }
  }

  /** Adds a close handler (called on the next microtask when already closed). */
  onClose(handler: (error: DinferError | undefined) => void): void {
    if (this.#closed) {
      const error = this.#closeError;
      queueMicrotask(() => handler(error));
      return;
    }
    this.#closeHandlers.push(handler);
  }

  /** Marks the channel closed with `error` and runs the close handlers; false if it already was. */
  finish(error: DinferError | undefined): boolean {
    if (this.#closed) return false;
    this.#closed = true;
    this.#closeError = error;
    this.#queued = [];
    const handlers = this.#closeHandlers;
    this.#closeHandlers = [];
    for (const handler of handlers) {
      try {
        handler(error);
      } catch (cause) {
        this.#logger.error(
          { remoteAddress: this.#options.remoteAddress, err: String(cause) },
          'channel close handler threw',
        );
      }
    }
    return true;
  }

  #call(handler: (envelope: Envelope) => void, envelope: Envelope): void {
    try {
      handler(envelope);
    } catch (cause) {
      const remoteAddress = this.#options.remoteAddress;
      this.#logger.error(
        { remoteAddress, err: cause instanceof Error ? cause.message : String(cause) },
        'envelope handler threw; closing the connection',
      );
      this.#options.onHandlerError(
        new DinferError(DinferErrorCode.INTERNAL, 'envelope handler threw', {
          cause,
          details: { remoteAddress },
        }),
      );
    }
  }
}
