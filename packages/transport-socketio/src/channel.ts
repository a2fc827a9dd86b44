/**
 * Core's `FrameChannel` over one socket.io socket (either side): envelopes become frames of
 * core's codec, cut into pieces of at most {@link SOCKETIO_PIECE_BYTES}, one `dinfer:frame`
 * event each; incoming pieces are reassembled by a `FrameDecoder` whose limit is 64 KiB until
 * the upgrader raises it.
 *
 * @module
 */
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
  PRE_AUTH_MAX_FRAME_BYTES,
} from '@dinfer/core';
import { SOCKETIO_PIECE_BYTES, SocketIoEvent } from './events.js';

/** The socket underneath a channel, whichever side it is on. */
export interface SocketIoLink {
  /** The peer's address, for logs. */
  readonly remoteAddress: string;
  /** Emits one `dinfer:frame` event carrying `piece`. */
  emit(piece: Uint8Array): void;
  /** Resolves when the link can take more data, or `undefined` when it can now. */
  writable(): Promise<void> | undefined;
  /**
   * Tears the socket down (a local close). With `stopReading`, the socket reads nothing more
   * and is cut after a linger time (a peer that never authenticated may still be flooding).
   */
  disconnect(stopReading: boolean): void;
}

/** Limits and collaborators of a {@link SocketIoChannel}. */
export interface SocketIoChannelOptions {
  readonly maxFrameBytes: number;
  readonly logger: Logger;
  readonly metrics: Metrics;
}

const LABELS = Object.freeze({ transport: 'socketio' });
/** Parts at least this big are sent as their own pieces, as views (no copy). */
const LARGE_PART_BYTES = 64 * 1024;

/** Returns `value` as a Uint8Array view (no copy) when it is binary, else `undefined`. */
function asBytes(value: unknown): Uint8Array | undefined {
  if (value instanceof Uint8Array) return value;
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  return undefined;
}

function concat(parts: readonly Uint8Array[], bytes: number): Uint8Array {
  const out = new Uint8Array(bytes);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.byteLength;
  }
  return out;
}

/**
 * Cuts an encoded frame into pieces of at most {@link SOCKETIO_PIECE_BYTES}. A frame that fits
 * one piece goes as one (one socket.io event costs more than copying up to a piece); in larger
 * ones, large parts are sent as views, not copied.
 */
function pieces(parts: readonly Uint8Array[]): Uint8Array[] {
  let total = 0;
  for (const part of parts) total += part.byteLength;
  if (total > SOCKETIO_PIECE_BYTES) return split(parts);
  return parts.length === 1 ? [parts[0]!] : [concat(parts, total)];
}

function split(parts: readonly Uint8Array[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  let small: Uint8Array[] = [];
  let smallBytes = 0;
  const flush = (): void => {
    if (smallBytes === 0) return;
    out.push(small.length === 1 ? small[0]! : concat(small, smallBytes));
    small = [];
    smallBytes = 0;
  };
  for (const part of parts) {
    if (part.byteLength >= LARGE_PART_BYTES) {
      flush();
      for (let offset = 0; offset < part.byteLength; offset += SOCKETIO_PIECE_BYTES) {
        out.push(part.subarray(offset, offset + SOCKETIO_PIECE_BYTES));
      }
    } else {
      if (smallBytes + part.byteLength > SOCKETIO_PIECE_BYTES) flush();
      small.push(part);
      smallBytes += part.byteLength;
    }
  }
  flush();
  return out;
}

/** A {@link FrameChannel} over a socket.io socket. */
export class SocketIoChannel implements FrameChannel {
  readonly remoteAddress: string;
  readonly #link: SocketIoLink;
  readonly #maxFrameBytes: number;
  readonly #decoder = new FrameDecoder({ maxFrameBytes: PRE_AUTH_MAX_FRAME_BYTES });
  readonly #logger: Logger;
  readonly #metrics: Metrics;
  readonly #events: ChannelEvents;
  /** True once the upgrader raised the incoming limit (the peer authenticated). */
  #trusted = false;

  constructor(link: SocketIoLink, options: SocketIoChannelOptions) {
    this.remoteAddress = link.remoteAddress;
    this.#link = link;
    this.#maxFrameBytes = options.maxFrameBytes;
    this.#logger = options.logger;
    this.#metrics = options.metrics;
    this.#events = new ChannelEvents({
      remoteAddress: link.remoteAddress,
      logger: options.logger,
      onHandlerError: (error) => this.close(error),
    });
  }

  /** Feeds one incoming socket.io event; anything but a `dinfer:frame` piece closes the channel. */
  receive(event: string, args: readonly unknown[]): void {
    if (this.#events.closed) return;
    const piece = args.length === 1 ? asBytes(args[0]) : undefined;
    if (event !== SocketIoEvent.FRAME || piece === undefined) {
      this.#reject(
        new DinferError(
          DinferErrorCode.PROTOCOL,
          `unexpected socket.io event "${String(event).slice(0, 64)}" (expected ${SocketIoEvent.FRAME} with one binary part)`,
        ),
      );
      return;
    }
    this.#metrics.increment('dinfer_transport_received_bytes_total', LABELS, piece.byteLength);
    let envelopes: Envelope[];
    try {
      envelopes = this.#decoder.push(piece);
    } catch (error) {
      this.#reject(error as DinferError);
      return;
    }
    for (const envelope of envelopes) this.#events.deliver(envelope);
  }

  /** The socket went away (not through {@link SocketIoChannel.close}). */
  lost(error: DinferError): void {
    this.#events.finish(error);
  }

  send(envelope: Envelope): Promise<void> {
    if (this.#events.closed) return Promise.reject(this.#events.closedError());
    let parts: Uint8Array[];
    try {
      parts = encodeFrame(envelope, { maxFrameBytes: this.#maxFrameBytes });
    } catch (error) {
      return Promise.reject(error);
    }
    let bytes = 0;
    for (const piece of pieces(parts)) {
      this.#link.emit(piece);
      bytes += piece.byteLength;
    }
    this.#metrics.increment('dinfer_transport_sent_bytes_total', LABELS, bytes);
    return this.#link.writable() ?? Promise.resolve();
  }

  onEnvelope(handler: (envelope: Envelope) => void): void {
    this.#events.onEnvelope(handler);
  }

  onClose(handler: (error: DinferError | undefined) => void): void {
    this.#events.onClose(handler);
  }

  setMaxIncomingFrameBytes(bytes: number): void {
    this.#decoder.maxFrameBytes = bytes;
    this.#trusted = bytes > PRE_AUTH_MAX_FRAME_BYTES;
  }

  close(error?: DinferError): void {
    if (!this.#events.finish(error)) return;
    // socket.io sends what was emitted before, then its disconnect packet.
    this.#link.disconnect(!this.#trusted);
  }

  /** The peer sent something that does not decode (or too much): closes the link. */
  #reject(error: DinferError): void {
    this.#metrics.increment('dinfer_transport_frames_rejected_total', { ...LABELS, code: error.code });
    this.#logger.warn(
      { remoteAddress: this.remoteAddress, code: error.code, err: error.message },
      'closing socket.io link: undecodable input',
    );
    this.close(error);
  }
}
