/**
 * The minimal contract a byte-level transport implements: an ordered, bidirectional channel
 * of {@link Envelope}s. Everything above it (authentication, request ids, replies, timeouts,
 * cancellation) is shared code: `authenticateListenerSide`/`authenticateDialerSide` and
 * `createChannelConnection`.
 *
 * A TCP transport, for example, is: a frame codec over a `net.Socket` -> a `FrameChannel`
 * -> authenticate -> `createChannelConnection`.
 *
 * @module
 */
import type { DinferError } from '../errors.js';
import type { Envelope } from '../transport.js';

/**
 * An ordered, bidirectional link carrying {@link Envelope}s, implemented by each transport.
 *
 * Rules an implementation follows:
 * - Envelopes are delivered to the peer complete and in the order `send` was called.
 * - `send` rejects with `DINFER_ERR_FRAME_TOO_LARGE` (and keeps the channel open) when the
 *   encoded envelope exceeds the transport's maximum frame size, and with
 *   `DINFER_ERR_TRANSPORT_CLOSED` once the channel is closed.
 * - An incoming frame that cannot be decoded closes the channel with a `DINFER_ERR_PROTOCOL`
 *   error; one above the maximum frame size closes it with `DINFER_ERR_FRAME_TOO_LARGE`,
 *   checked before the frame's bytes are allocated.
 * - `onClose` handlers run exactly once, whoever closed the channel.
 */
export interface FrameChannel {
  /** The peer's address, for logs. */
  readonly remoteAddress: string;
  /**
   * Queues `envelope` for the peer. Resolves once it is handed to the OS (respecting
   * backpressure: with a slow reader, the promise waits for the write buffer to drain).
   */
  send(envelope: Envelope): Promise<void>;
  /**
   * Sets the handler that receives every incoming envelope, in order. A later call replaces
   * the handler. Envelopes that arrive while no handler is set are queued and delivered once
   * one is. Consumers set it once, right after creating the channel.
   */
  onEnvelope(handler: (envelope: Envelope) => void): void;
  /**
   * Adds a handler called once when the channel closes, with the error that closed it
   * (`undefined` for a clean close by either side). Added after the close, it is called
   * on the next microtask.
   */
  onClose(handler: (error: DinferError | undefined) => void): void;
  /**
   * Closes the channel. Envelopes whose `send` was called before are still written where the
   * link allows (a graceful end, like `socket.end()`), then the link is released.
   * Idempotent. `error`, when given, is what local `onClose` handlers receive.
   */
  close(error?: DinferError): void;
}
