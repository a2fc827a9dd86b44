/**
 * The one contract a transport implements: an ordered, bidirectional channel of
 * {@link Envelope}s. Everything above it (authentication, request ids, replies, timeouts,
 * cancellation, reconnection, pooling, metrics) is core's upgrader: `listenForConnections`
 * and `dialConnection`.
 *
 * A TCP transport, for example, is: a frame codec over a `net.Socket` -> a `FrameChannel`.
 *
 * @module
 */
import type { DinferError } from '../errors.js';
import type { Envelope } from '../transport.js';

/**
 * Largest incoming frame a channel accepts before the upgrader has authenticated the peer
 * (handshake messages are tiny): 64 KiB. A transport hands out every channel with this limit
 * and enforces it before buffering a frame, so an unauthenticated peer cannot make the
 * listener hold large messages.
 */
export const PRE_AUTH_MAX_FRAME_BYTES = 64 * 1024;

/**
 * An ordered, bidirectional link carrying {@link Envelope}s, implemented by each transport.
 *
 * Rules an implementation follows:
 * - Envelopes are delivered to the peer complete and in the order `send` was called.
 * - `send` rejects with `DINFER_ERR_FRAME_TOO_LARGE` (and keeps the channel open) when the
 *   encoded envelope exceeds the transport's maximum frame size, and with
 *   `DINFER_ERR_TRANSPORT_CLOSED` once the channel is closed.
 * - An incoming frame that cannot be decoded closes the channel with a `DINFER_ERR_PROTOCOL`
 *   error; one above the incoming limit closes it with `DINFER_ERR_FRAME_TOO_LARGE`, checked
 *   before the frame's bytes are buffered. The incoming limit starts at
 *   {@link PRE_AUTH_MAX_FRAME_BYTES} and is raised by {@link FrameChannel.setMaxIncomingFrameBytes}.
 * - The link going away under the channel (the peer's process died, a reset, an EOF) closes
 *   it with a `DINFER_ERR_TRANSPORT_CLOSED` error, not cleanly.
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
   * Sets the largest incoming frame accepted from now on, in bytes. The upgrader raises it
   * to the transport's `maxFrameBytes` during the handshake: a listener once the dialer has
   * proved the token, a dialer once it has answered the listener's challenge.
   */
  setMaxIncomingFrameBytes(bytes: number): void;
  /**
   * Closes the channel. Envelopes whose `send` was called before are still written where the
   * link allows (a graceful end, like `socket.end()`), then the link is released.
   * Idempotent. `error`, when given, is what local `onClose` handlers receive.
   */
  close(error?: DinferError): void;
}
