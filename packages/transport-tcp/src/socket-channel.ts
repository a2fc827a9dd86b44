/**
 * Adapts a `net.Socket` (or `tls.TLSSocket`) to core's `FrameChannel`: frames out with
 * `encodeFrame` (the socket stays corked until the end of the tick, so a burst of frames
 * leaves in one `writev`), frames in with a streaming `FrameDecoder`.
 *
 * @module
 */
import type { Socket } from 'node:net';
import {
  ChannelEvents,
  DinferError,
  DinferErrorCode,
  type Envelope,
  encodeFrame,
  type FrameChannel,
  FrameDecoder,
  type Logger,
  type Metrics,
  noopMetrics,
  silentLogger,
} from '@dinfer/core';

/** Frames at least this big skip same-tick write batching (see `send`). */
const LARGE_FRAME_BYTES = 64 * 1024;

/** Options for {@link socketChannel}. */
export interface SocketChannelOptions {
  /** Largest frame body sent, and accepted once {@link SocketChannel.setMaxIncomingFrameBytes} raises the limit. */
  maxFrameBytes: number;
  /** Largest frame body accepted until raised (e.g. a small limit before authentication). Default `maxFrameBytes`. */
  incomingMaxFrameBytes?: number | undefined;
  /** Address of the peer, for logs (defaults to the socket's remote address). */
  remoteAddress?: string | undefined;
  /** Receives a warning for every undecodable frame (default: silent). */
  logger?: Logger | undefined;
  /** Counts bytes sent/received and rejected frames (default: no-op). */
  metrics?: Metrics | undefined;
  /** After a graceful `close()`, destroy the socket if the peer has not closed within this time. Default 2000. */
  lingerMs?: number | undefined;
}

/** A {@link FrameChannel} over a socket, with a receive limit that can be raised after authentication. */
export interface SocketChannel extends FrameChannel {
  /** Largest incoming frame body accepted from now on. */
  setMaxIncomingFrameBytes(bytes: number): void;
  /** The underlying socket. */
  readonly socket: Socket;
}

const LABELS = { transport: 'tcp' };

/**
 * Wraps a connected socket in a {@link SocketChannel}. The socket must be connected (for TLS:
 * the secure handshake done); the channel owns it from now on.
 */
export function socketChannel(socket: Socket, options: SocketChannelOptions): SocketChannel {
  return new TcpSocketChannel(socket, options);
}

class TcpSocketChannel implements SocketChannel {
  readonly socket: Socket;
  readonly remoteAddress: string;
  readonly #decoder: FrameDecoder;
  readonly #maxFrameBytes: number;
  readonly #logger: Logger;
  readonly #metrics: Metrics;
  readonly #lingerMs: number;
  readonly #events: ChannelEvents;
  #corked = false;

  constructor(socket: Socket, options: SocketChannelOptions) {
    this.socket = socket;
    this.remoteAddress =
      options.remoteAddress ??
      (socket.remoteFamily === 'IPv6'
        ? `[${socket.remoteAddress}]:${socket.remotePort}`
        : `${socket.remoteAddress}:${socket.remotePort}`);
    this.#maxFrameBytes = options.maxFrameBytes;
    this.#decoder = new FrameDecoder({
      maxFrameBytes: options.incomingMaxFrameBytes ?? options.maxFrameBytes,
    });
    this.#logger = options.logger ?? silentLogger;
    this.#metrics = options.metrics ?? noopMetrics;
    this.#lingerMs = options.lingerMs ?? 2000;
    this.#events = new ChannelEvents({
      remoteAddress: this.remoteAddress,
      logger: this.#logger,
      // A consumer that throws costs this link only, never the process.
      onHandlerError: (error) => {
        this.#finish(error);
        this.socket.destroy();
      },
    });

    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('error', (error: Error) => {
      this.#finish(
        new DinferError(
          DinferErrorCode.TRANSPORT_CLOSED,
          `connection to ${this.remoteAddress} failed: ${error.message}`,
          {
            cause: error,
            details: { remoteAddress: this.remoteAddress },
          },
        ),
      );
    });
    // Reaching here before close() was called means the link went away under us: the peer's
    // process died, or it hung up without the goodbye its connection layer sends. That is an
    // error (so a reconnecting dialer redials), not a clean close.
    socket.on('close', () => {
      const truncated = this.#decoder.bufferedBytes > 0 && this.#decoder.error === undefined;
      this.#finish(
        new DinferError(
          DinferErrorCode.TRANSPORT_CLOSED,
          truncated
            ? `${this.remoteAddress} closed the connection in the middle of a frame`
            : `${this.remoteAddress} closed the connection`,
          { details: { remoteAddress: this.remoteAddress, bufferedBytes: this.#decoder.bufferedBytes } },
        ),
      );
    });
  }

  setMaxIncomingFrameBytes(bytes: number): void {
    this.#decoder.maxFrameBytes = bytes;
  }

  #onData(chunk: Buffer): void {
    if (this.#events.closed) return;
    this.#metrics.increment('dinfer_transport_received_bytes_total', LABELS, chunk.byteLength);
    let envelopes: Envelope[];
    try {
      envelopes = this.#decoder.push(chunk);
    } catch (error) {
      const typed = error as DinferError;
      this.#metrics.increment('dinfer_transport_frames_rejected_total', { ...LABELS, code: typed.code });
      this.#logger.warn(
        { remoteAddress: this.remoteAddress, code: typed.code, err: typed.message },
        'closing connection: undecodable frame',
      );
      // The byte stream has lost its framing; nothing more can be read or sent on it.
      this.#finish(typed);
      this.socket.destroy();
      return;
    }
    for (const envelope of envelopes) this.#events.deliver(envelope);
  }

  send(envelope: Envelope): Promise<void> {
    if (this.#events.closed) return Promise.reject(this.#events.closedError());
    let parts: Uint8Array[];
    try {
      parts = encodeFrame(envelope, { maxFrameBytes: this.#maxFrameBytes });
    } catch (error) {
      return Promise.reject(error);
    }
    const socket = this.socket;
    return new Promise<void>((resolve, reject) => {
      let bytes = 0;
      for (const part of parts) bytes += part.byteLength;
      const last = parts.length - 1;
      // Small frames sent in the same tick share one writev. A large frame goes out as its own
      // writev at once: batching it would hold every sender of the batch until the whole batch
      // reached the kernel, leaving the link idle while the batch refills.
      const large = bytes >= LARGE_FRAME_BYTES;
      if (large) socket.cork();
      else this.#cork();
      for (let i = 0; i < last; i++) socket.write(parts[i]!);
      // The callback of the last chunk runs once the whole frame is handed to the OS, so a
      // slow reader holds the sender here (backpressure) instead of growing our buffers.
      socket.write(parts[last]!, (error) => {
        if (error) {
          reject(
            new DinferError(DinferErrorCode.TRANSPORT_CLOSED, `write to ${this.remoteAddress} failed`, {
              cause: error,
            }),
          );
        } else {
          this.#metrics.increment('dinfer_transport_sent_bytes_total', LABELS, bytes);
          resolve();
        }
      });
      if (large) socket.uncork();
    });
  }

  /**
   * Corks the socket until the end of this tick, so every frame sent in the same tick leaves
   * in one `writev` (one syscall for a burst of small messages).
   */
  #cork(): void {
    if (this.#corked) return;
    this.#corked = true;
    this.socket.cork();
    process.nextTick(() => {
      this.#corked = false;
      this.socket.uncork();
    });
  }

  onEnvelope(handler: (envelope: Envelope) => void): void {
    this.#events.onEnvelope(handler);
  }

  onClose(handler: (error: DinferError | undefined) => void): void {
    this.#events.onClose(handler);
  }

  close(error?: DinferError): void {
    if (!this.#finish(error)) return;
    const socket = this.socket;
    if (socket.destroyed) return;
    // Graceful: frames already written still go out, then FIN. A peer that never closes its
    // side (or never reads) is cut off after the linger time.
    socket.end();
    const timer = setTimeout(() => socket.destroy(), this.#lingerMs);
    timer.unref();
    socket.once('close', () => clearTimeout(timer));
  }

  #finish(error: DinferError | undefined): boolean {
    return this.#events.finish(error);
  }
}
