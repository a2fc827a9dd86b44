/**
 * A pair of connected in-process {@link FrameChannel}s, the in-memory stand-in for a socket.
 * Delivery is asynchronous and ordered, headers go through JSON and attachments are copied
 * (large ones into bodies of the frame buffer pool, as a socket's frame decoder does), so
 * neither side can observe the other's objects (as with a real wire).
 *
 * @module
 */
import { type FrameChannel, PRE_AUTH_MAX_FRAME_BYTES } from '../connection/frame-channel.js';
import { DinferError, DinferErrorCode } from '../errors.js';
import { allocateFrameBody } from '../protocol/frame-buffer-pool.js';
import type { Envelope, MessageHeader } from '../transport.js';

/** Options for {@link memoryChannelPair}. */
export interface MemoryChannelPairOptions {
  /**
   * Largest frame each end sends, and accepts once its incoming limit is raised, in bytes
   * (`[a, b]`, or one value for both). Default 64 MiB + 64 KiB.
   */
  maxFrameBytes?: number | readonly [number, number] | undefined;
  /**
   * Largest frame each end accepts until `setMaxIncomingFrameBytes` raises it. Default: the
   * smaller of {@link PRE_AUTH_MAX_FRAME_BYTES} and `maxFrameBytes`, as for channels a
   * transport hands out before authentication.
   */
  incomingMaxFrameBytes?: number | undefined;
  /** Addresses each end reports as `remoteAddress` of its peer: `[a's view of b, b's view of a]`. */
  addresses?: readonly [string, string] | undefined;
}

/** Default largest frame of the in-memory channels and transport: 64 MiB of payload plus room for the header. */
export const DEFAULT_MEMORY_MAX_FRAME_BYTES = 64 * 1024 * 1024 + 64 * 1024;

const encoder = new TextEncoder();

/** Bytes a frame takes on the in-memory wire: the UTF-8 JSON header plus every attachment. */
export function memoryFrameBytes(header: MessageHeader, attachments: readonly Uint8Array[]): number {
  let bytes = encoder.encode(JSON.stringify(header)).byteLength;
  for (const attachment of attachments) bytes += attachment.byteLength;
  return bytes;
}

type Item =
  | {
      readonly kind: 'frame';
      readonly json: string;
      readonly attachments: Uint8Array[];
      readonly bytes: number;
    }
  | { readonly kind: 'end'; readonly error: DinferError | undefined };

let pushTo: (channel: MemoryChannel, item: Item) => void;

/** Runs `task` after pending I/O (a macrotask), in Node and in browsers. */
const defer: (task: () => void) => void =
  typeof setImmediate === 'function' ? (task) => setImmediate(task) : (task) => setTimeout(task, 0);

class MemoryChannel implements FrameChannel {
  static {
    pushTo = (channel, item) => channel.#push(item);
  }

  readonly remoteAddress: string;
  peer!: MemoryChannel;
  readonly #maxFrameBytes: number;
  #maxIncomingFrameBytes: number;
  readonly #inbox: Item[] = [];
  readonly #closeHandlers: Array<(error: DinferError | undefined) => void> = [];
  #handler: ((envelope: Envelope) => void) | undefined;
  #scheduled = false;
  #sendClosed = false;
  #closed = false;
  #closeError: DinferError | undefined;

  constructor(remoteAddress: string, maxFrameBytes: number, maxIncomingFrameBytes: number) {
    this.remoteAddress = remoteAddress;
    this.#maxFrameBytes = maxFrameBytes;
    this.#maxIncomingFrameBytes = maxIncomingFrameBytes;
  }

  setMaxIncomingFrameBytes(bytes: number): void {
    this.#maxIncomingFrameBytes = bytes;
  }

  send(envelope: Envelope): Promise<void> {
    if (this.#sendClosed) {
      return Promise.reject(
        new DinferError(
          DinferErrorCode.TRANSPORT_CLOSED,
          `memory channel to ${this.remoteAddress} is closed`,
        ),
      );
    }
    let json: string;
    try {
      json = JSON.stringify(envelope.header);
    } catch (error) {
      return Promise.reject(
        new DinferError(DinferErrorCode.INVALID_ARGUMENT, 'header is not JSON-serialisable', {
          cause: error,
        }),
      );
    }
    let bytes = encoder.encode(json).byteLength;
    for (const attachment of envelope.attachments) bytes += attachment.byteLength;
    if (bytes > this.#maxFrameBytes) {
      return Promise.reject(
        new DinferError(
          DinferErrorCode.FRAME_TOO_LARGE,
          `frame of ${bytes} bytes exceeds the limit of ${this.#maxFrameBytes}`,
          {
            details: { bytes, maxFrameBytes: this.#maxFrameBytes },
          },
        ),
      );
    }
    // Copy now: the caller may reuse its buffers once send resolves. Large attachments land in
    // pooled bodies, as a socket's FrameDecoder would put them.
    const attachments = envelope.attachments.map((a) => {
      const copy = allocateFrameBody(a.byteLength);
      copy.set(a);
      return copy;
    });
    this.peer.#push({ kind: 'frame', json, attachments, bytes });
    return Promise.resolve();
  }

  onEnvelope(handler: (envelope: Envelope) => void): void {
    this.#handler = handler;
    this.#schedule();
  }

  onClose(handler: (error: DinferError | undefined) => void): void {
    if (this.#closed) {
      const error = this.#closeError;
      queueMicrotask(() => handler(error));
    } else {
      this.#closeHandlers.push(handler);
    }
  }

  close(error?: DinferError): void {
    if (this.#sendClosed) return;
    this.#sendClosed = true;
    const peerError =
      error === undefined
        ? undefined
        : new DinferError(
            DinferErrorCode.TRANSPORT_CLOSED,
            `peer closed the link: ${error.code}: ${error.message}`,
            {
              details: { remoteCode: error.code },
            },
          );
    this.peer.#push({ kind: 'end', error: peerError });
    this.#finish(error);
  }

  #push(item: Item): void {
    if (this.#closed) return;
    if (item.kind === 'end' && this.#handler === undefined) {
      // Nobody reads this end: nothing to deliver first.
      this.#sendClosed = true;
      this.#finish(item.error);
      return;
    }
    this.#inbox.push(item);
    this.#schedule();
  }

  #schedule(): void {
    if (this.#scheduled || this.#handler === undefined || this.#inbox.length === 0) return;
    this.#scheduled = true;
    defer(() => {
      this.#scheduled = false;
      this.#drain();
    });
  }

  #drain(): void {
    while (!this.#closed && this.#handler !== undefined && this.#inbox.length > 0) {
      const item = this.#inbox.shift()!;
      if (item.kind === 'end') {
        this.#sendClosed = true;
        this.#finish(item.error);
        return;
      }
      if (item.bytes > this.#maxIncomingFrameBytes) {
        this.close(
          new DinferError(
            DinferErrorCode.FRAME_TOO_LARGE,
            `incoming frame of ${item.bytes} bytes exceeds the limit of ${this.#maxIncomingFrameBytes}`,
            { details: { bytes: item.bytes, maxFrameBytes: this.#maxIncomingFrameBytes } },
          ),
        );
        return;
      }
      let header: MessageHeader;
      try {
        header = JSON.parse(item.json) as MessageHeader;
      } catch (error) {
        this.close(new DinferError(DinferErrorCode.PROTOCOL, 'undecodable frame header', { cause: error }));
        return;
      }
      this.#handler({ header, attachments: item.attachments });
    }
  }

  #finish(error: DinferError | undefined): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#closeError = error;
    this.#inbox.length = 0;
    const handlers = this.#closeHandlers.splice(0);
    queueMicrotask(() => {
      for (const handler of handlers) handler(error);
    });
  }
}

/**
 * Creates two connected in-memory {@link FrameChannel}s. Each end enforces its own limits: a
 * send above its `maxFrameBytes` rejects with `DINFER_ERR_FRAME_TOO_LARGE`, and a frame above
 * its incoming limit arriving from the peer closes the receiving end with that error (the
 * peer sees `DINFER_ERR_TRANSPORT_CLOSED`).
 */
export function memoryChannelPair(options: MemoryChannelPairOptions = {}): [FrameChannel, FrameChannel] {
  const limits = options.maxFrameBytes ?? DEFAULT_MEMORY_MAX_FRAME_BYTES;
  const [maxA, maxB] = typeof limits === 'number' ? [limits, limits] : limits;
  const incoming = (max: number) => options.incomingMaxFrameBytes ?? Math.min(PRE_AUTH_MAX_FRAME_BYTES, max);
  const [addressA, addressB] = options.addresses ?? ['memory:b', 'memory:a'];
  const a = new MemoryChannel(addressA, maxA, incoming(maxA));
  const b = new MemoryChannel(addressB, maxB, incoming(maxB));
  a.peer = b;
  b.peer = a;
  return [a, b];
}

/**
 * Delivers a broken frame to `channel`'s peer, as a hostile or buggy sender would: `malformed`
 * is an undecodable header, `oversize` claims more bytes than any limit. Used by the
 * transport suite's abuse tests of the memory transport.
 */
export function injectMemoryGarbage(channel: FrameChannel, kind: 'malformed' | 'oversize'): void {
  if (!(channel instanceof MemoryChannel)) {
    throw new DinferError(DinferErrorCode.INVALID_ARGUMENT, 'not a memory channel');
  }
  const bytes = kind === 'oversize' ? Number.MAX_SAFE_INTEGER : 1;
  pushTo(channel.peer, {
    kind: 'frame',
    json: kind === 'malformed' ? '{"type":' : '{}',
    attachments: [],
    bytes,
  });
}
