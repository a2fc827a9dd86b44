/**
 * Length-prefixed binary frames for byte-stream transports (TCP, TLS, WebSocket, pipes).
 *
 * One frame carries one {@link Envelope}. Layout (all integers big-endian):
 *
 * ```
 * u32  bodyLength            bytes that follow this prefix
 * ---- body ----
 * u8   magic (0xD1)          "dinfer frame, layout 1"
 * u32  headerLength          bytes of UTF-8 JSON header
 * u32  attachmentCount
 * ...  header JSON           headerLength bytes
 * u32  × attachmentCount     attachment lengths
 * 0-7  zero padding          so the first attachment starts at a multiple of 8 in the body
 * for each attachment: its bytes, then zero padding to a multiple of 8 (none after the last)
 * ```
 *
 * The padding keeps every attachment 8-byte aligned inside the body, and {@link FrameDecoder}
 * assembles each body into a fresh 8-byte-aligned buffer, so a decoded attachment can be viewed
 * as a `Float32Array` or `Float64Array` without a copy. The decoder checks every length against
 * `maxFrameBytes` before allocating anything, and checks that the lengths add up to exactly
 * the body length. Nothing in a frame is ever evaluated: the header is parsed with `JSON.parse`.
 *
 * The codec uses only `Uint8Array`, `DataView` and `TextEncoder`/`TextDecoder`, so it runs in
 * browsers too; in Node it allocates with `Buffer.allocUnsafe` (no zero fill, 8-byte aligned).
 *
 * @module
 */
import { DinferError, DinferErrorCode } from '../errors.js';
import type { Envelope, MessageHeader } from '../transport.js';
import { allocateFrameBody } from './frame-buffer-pool.js';

/** First byte of every frame body: identifies the frame layout version. */
export const FRAME_MAGIC = 0xd1;

/** Bytes of the length prefix in front of every frame body. */
export const FRAME_PREFIX_BYTES = 4;

/** Bytes of the fixed part of the body: magic, header length, attachment count. */
export const FRAME_FIXED_HEADER_BYTES = 9;

/** Default largest frame body a decoder accepts: 256 MiB. */
export const DEFAULT_MAX_FRAME_BYTES = 256 * 1024 * 1024;

/** Largest body the 32-bit length prefix can describe. */
const MAX_U32 = 0xffff_ffff;

/** Attachments smaller than this are copied into the neighbouring frame buffer instead of written separately. */
const INLINE_ATTACHMENT_BYTES = 16 * 1024;

const ZERO_PADDING = new Uint8Array(8);
const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder('utf-8', { fatal: true });

type Allocate = (size: number) => Uint8Array;
const nodeBuffer = (globalThis as { Buffer?: { allocUnsafe(size: number): Uint8Array } }).Buffer;
/** Uninitialised, 8-byte-aligned memory in Node; zeroed memory elsewhere. */
const allocate: Allocate =
  nodeBuffer === undefined ? (size) => new Uint8Array(size) : (size) => nodeBuffer.allocUnsafe(size);

function padTo8(n: number): number {
  return (8 - (n & 7)) & 7;
}

/** Options for {@link encodeFrame}. */
export interface EncodeFrameOptions {
  /** Refuse to encode a frame whose body exceeds this many bytes. Default {@link DEFAULT_MAX_FRAME_BYTES}. */
  maxFrameBytes?: number | undefined;
}

/**
 * Encodes an envelope into one frame, returned as a list of byte chunks to write in order
 * (length prefix included). Large attachments are returned as-is, never copied; small ones
 * are merged into neighbouring chunks so a frame costs few write calls.
 *
 * @throws DinferError `PROTOCOL` when the header is not a plain object with a string `type`
 *   or cannot be serialised as JSON; `FRAME_TOO_LARGE` when the body exceeds `maxFrameBytes`.
 */
export function encodeFrame(envelope: Envelope, options: EncodeFrameOptions = {}): Uint8Array[] {
  const maxFrameBytes = checkMaxFrameBytes(options.maxFrameBytes);
  const header = envelope.header as unknown;
  if (!isHeader(header)) {
    throw new DinferError(
      DinferErrorCode.PROTOCOL,
      'envelope header must be a plain object with a string `type`',
    );
  }
  let json: string;
  try {
    json = JSON.stringify(header);
  } catch (cause) {
    throw new DinferError(DinferErrorCode.PROTOCOL, 'envelope header cannot be serialised as JSON', {
      cause,
      details: { type: header.type },
    });
  }
  const headerBytes = textEncoder.encode(json);
  const attachments = envelope.attachments;
  const count = attachments.length;

  const preamble = FRAME_FIXED_HEADER_BYTES + headerBytes.byteLength + 4 * count;
  const firstPad = padTo8(preamble);
  let bodyLength = preamble + firstPad;
  for (let i = 0; i < count; i++) {
    const attachment = attachments[i]!;
    if (!(attachment instanceof Uint8Array)) {
      throw new DinferError(DinferErrorCode.PROTOCOL, `attachment ${i} is not a Uint8Array`);
    }
    bodyLength += attachment.byteLength;
    if (i < count - 1) bodyLength += padTo8(attachment.byteLength);
  }
  if (count === 0) bodyLength = preamble;
  if (bodyLength > maxFrameBytes) {
    throw new DinferError(
      DinferErrorCode.FRAME_TOO_LARGE,
      `frame of ${bodyLength} bytes exceeds the maximum of ${maxFrameBytes} bytes`,
      { details: { bytes: bodyLength, maxFrameBytes, type: header.type } },
    );
  }

  const headLength = FRAME_PREFIX_BYTES + preamble + (count === 0 ? 0 : firstPad);
  const head = allocate(headLength);
  const view = new DataView(head.buffer, head.byteOffset, head.byteLength);
  view.setUint32(0, bodyLength);
  view.setUint8(4, FRAME_MAGIC);
  view.setUint32(5, headerBytes.byteLength);
  view.setUint32(9, count);
  head.set(headerBytes, FRAME_PREFIX_BYTES + FRAME_FIXED_HEADER_BYTES);
  let offset = FRAME_PREFIX_BYTES + FRAME_FIXED_HEADER_BYTES + headerBytes.byteLength;
  for (let i = 0; i < count; i++) {
    view.setUint32(offset, attachments[i]!.byteLength);
    offset += 4;
  }
  head.fill(0, offset);

  // Merge runs of small attachments (and padding) into one chunk; pass large ones through.
  const parts: Uint8Array[] = [];
  let run: Uint8Array[] = [head];
  let runLength = head.byteLength;
  const flush = (): void => {
    if (run.length === 1) parts.push(run[0]!);
    else if (run.length > 1) parts.push(concat(run, runLength));
    run = [];
    runLength = 0;
  };
  for (let i = 0; i < count; i++) {
    const attachment = attachments[i]!;
    if (attachment.byteLength >= INLINE_ATTACHMENT_BYTES) {
      flush();
      parts.push(attachment);
    } else if (attachment.byteLength > 0) {
      run.push(attachment);
      runLength += attachment.byteLength;
    }
    const pad = i < count - 1 ? padTo8(attachment.byteLength) : 0;
    if (pad > 0) {
      run.push(ZERO_PADDING.subarray(0, pad));
      runLength += pad;
    }
  }
  flush();
  return parts;
}

/** Total bytes of an encoded frame (the sum of its chunks' lengths). */
export function frameByteLength(parts: readonly Uint8Array[]): number {
  let total = 0;
  for (const part of parts) total += part.byteLength;
  return total;
}

/** Options for {@link FrameDecoder}. */
export interface FrameDecoderOptions {
  /** Largest frame body accepted, in bytes. Default {@link DEFAULT_MAX_FRAME_BYTES}. */
  maxFrameBytes?: number | undefined;
}

/**
 * Streaming frame parser. Feed it bytes as they arrive with {@link FrameDecoder.push}, in
 * chunks split anywhere (one byte at a time or many frames at once); it returns the envelopes
 * completed by that chunk.
 *
 * Received chunks are kept in a list and copied once, into the frame's own buffer, when the
 * frame is complete, so decoding is linear in the bytes received. Attachments are views of that
 * buffer, 8-byte aligned; a large frame's buffer comes from the frame buffer pool
 * (`frame-buffer-pool.ts`), where `releaseAttachments` gives it back. A length prefix above `maxFrameBytes` fails at once, before the
 * frame's bytes arrive. After an error the decoder is unusable: every later `push` throws the
 * same error, and the caller should close the connection.
 */
export class FrameDecoder {
  #maxFrameBytes: number;
  #chunks: Uint8Array[] = [];
  /** Read position inside `#chunks[0]`. */
  #offset = 0;
  /** Unconsumed bytes across all chunks. */
  #buffered = 0;
  /** Body length of the frame being received, or -1 while the prefix is incomplete. */
  #bodyLength = -1;
  /** Whether the fixed header of the current frame has been validated. */
  #fixedChecked = false;
  #error: DinferError | undefined;
  readonly #prefix = new Uint8Array(FRAME_PREFIX_BYTES + FRAME_FIXED_HEADER_BYTES);

  constructor(options: FrameDecoderOptions = {}) {
    this.#maxFrameBytes = checkMaxFrameBytes(options.maxFrameBytes);
  }

  /** Largest frame body accepted. May be changed between pushes (e.g. raised after authentication). */
  get maxFrameBytes(): number {
    return this.#maxFrameBytes;
  }

  set maxFrameBytes(value: number) {
    this.#maxFrameBytes = checkMaxFrameBytes(value);
  }

  /** Bytes received but not yet returned as envelopes. */
  get bufferedBytes(): number {
    return this.#buffered;
  }

  /** The error that stopped this decoder, if any. */
  get error(): DinferError | undefined {
    return this.#error;
  }

  /**
   * Adds received bytes; returns the envelopes they complete (possibly none).
   * The chunk is retained until consumed, so the caller must not reuse its memory.
   *
   * @throws DinferError `FRAME_TOO_LARGE` or `PROTOCOL`; the decoder then stays failed.
   */
  push(chunk: Uint8Array): Envelope[] {
    if (this.#error !== undefined) throw this.#error;
    if (chunk.byteLength > 0) {
      this.#chunks.push(chunk);
      this.#buffered += chunk.byteLength;
    }
    const out: Envelope[] = [];
    try {
      for (;;) {
        if (this.#bodyLength < 0) {
          if (this.#buffered < FRAME_PREFIX_BYTES) break;
          this.#peek(FRAME_PREFIX_BYTES);
          const length = readU32(this.#prefix, 0);
          this.#checkBodyLength(length);
          this.#bodyLength = length;
          this.#fixedChecked = false;
        }
        const body = this.#bodyLength;
        if (!this.#fixedChecked && this.#buffered >= FRAME_PREFIX_BYTES + FRAME_FIXED_HEADER_BYTES) {
          this.#peek(FRAME_PREFIX_BYTES + FRAME_FIXED_HEADER_BYTES);
          checkFixedHeader(this.#prefix, FRAME_PREFIX_BYTES, body);
          this.#fixedChecked = true;
        }
        if (this.#buffered < FRAME_PREFIX_BYTES + body) break;
        this.#skip(FRAME_PREFIX_BYTES);
        const bytes = this.#take(body);
        this.#bodyLength = -1;
        out.push(decodeBody(bytes));
      }
    } catch (error) {
      this.#fail(error);
    }
    return out;
  }

  #fail(error: unknown): never {
    this.#error =
      error instanceof DinferError
        ? error
        : new DinferError(DinferErrorCode.PROTOCOL, 'frame could not be decoded', { cause: error });
    this.#chunks = [];
    this.#buffered = 0;
    this.#offset = 0;
    throw this.#error;
  }

  #checkBodyLength(length: number): void {
    if (length > this.#maxFrameBytes) {
      throw new DinferError(
        DinferErrorCode.FRAME_TOO_LARGE,
        `incoming frame of ${length} bytes exceeds the maximum of ${this.#maxFrameBytes} bytes`,
        { details: { bytes: length, maxFrameBytes: this.#maxFrameBytes } },
      );
    }
    if (length < FRAME_FIXED_HEADER_BYTES) {
      throw new DinferError(
        DinferErrorCode.PROTOCOL,
        `frame body of ${length} bytes is shorter than its header`,
      );
    }
  }

  /** Copies the first `n` unconsumed bytes into `#prefix` without consuming them. */
  #peek(n: number): void {
    let filled = 0;
    let offset = this.#offset;
    for (const chunk of this.#chunks) {
      const take = Math.min(n - filled, chunk.byteLength - offset);
      this.#prefix.set(chunk.subarray(offset, offset + take), filled);
      filled += take;
      offset = 0;
      if (filled === n) return;
    }
  }

  #skip(n: number): void {
    this.#buffered -= n;
    while (n > 0) {
      const chunk = this.#chunks[0]!;
      const left = chunk.byteLength - this.#offset;
      if (n < left) {
        this.#offset += n;
        return;
      }
      n -= left;
      this.#chunks.shift();
      this.#offset = 0;
    }
  }

  /** Consumes `n` bytes into a fresh (or reused), 8-byte-aligned buffer. */
  #take(n: number): Uint8Array {
    const out = allocateFrameBody(n);
    let filled = 0;
    let used = 0;
    this.#buffered -= n;
    while (filled < n) {
      const chunk = this.#chunks[used]!;
      const left = chunk.byteLength - this.#offset;
      const take = Math.min(n - filled, left);
      if (take === chunk.byteLength) out.set(chunk, filled);
      else out.set(chunk.subarray(this.#offset, this.#offset + take), filled);
      filled += take;
      if (take === left) {
        used++;
        this.#offset = 0;
      } else {
        this.#offset += take;
      }
    }
    // One splice per frame keeps this linear even when the frame arrived in a million tiny chunks.
    this.#chunks.splice(0, used);
    return out;
  }
}

/**
 * Decodes one complete frame body (the bytes after the length prefix).
 * Attachments are views of `body`.
 *
 * @throws DinferError `PROTOCOL` when the body is malformed.
 */
export function decodeFrameBody(body: Uint8Array): Envelope {
  return decodeBody(body);
}

function decodeBody(body: Uint8Array): Envelope {
  const length = body.byteLength;
  if (length < FRAME_FIXED_HEADER_BYTES) {
    throw new DinferError(
      DinferErrorCode.PROTOCOL,
      `frame body of ${length} bytes is shorter than its header`,
    );
  }
  const { headerLength, count } = checkFixedHeader(body, 0, length);
  const view = new DataView(body.buffer, body.byteOffset, length);
  const headerStart = FRAME_FIXED_HEADER_BYTES;
  const tableStart = headerStart + headerLength;
  const preamble = tableStart + 4 * count;

  let header: unknown;
  try {
    header = JSON.parse(textDecoder.decode(body.subarray(headerStart, tableStart)));
  } catch (cause) {
    throw new DinferError(DinferErrorCode.PROTOCOL, 'frame header is not valid UTF-8 JSON', { cause });
  }
  if (!isHeader(header)) {
    throw new DinferError(
      DinferErrorCode.PROTOCOL,
      'frame header must be a JSON object with a string `type`',
    );
  }

  const attachments: Uint8Array[] = new Array(count);
  let offset = count === 0 ? preamble : preamble + padTo8(preamble);
  for (let i = 0; i < count; i++) {
    const size = view.getUint32(tableStart + 4 * i);
    if (size > length - offset) {
      throw new DinferError(
        DinferErrorCode.PROTOCOL,
        `attachment ${i} of ${size} bytes overruns the frame body of ${length} bytes`,
      );
    }
    attachments[i] = new Uint8Array(body.buffer, body.byteOffset + offset, size);
    offset += size;
    if (i < count - 1) offset += padTo8(size);
  }
  if (offset !== length) {
    throw new DinferError(
      DinferErrorCode.PROTOCOL,
      `frame lengths add up to ${offset} bytes but the frame body has ${length}`,
    );
  }
  return { header, attachments };
}

/** Validates magic, header length and attachment count against the body length. */
function checkFixedHeader(
  bytes: Uint8Array,
  at: number,
  bodyLength: number,
): { headerLength: number; count: number } {
  if (bytes[at] !== FRAME_MAGIC) {
    throw new DinferError(
      DinferErrorCode.PROTOCOL,
      `bad frame magic 0x${(bytes[at] ?? 0).toString(16)} (expected 0x${FRAME_MAGIC.toString(16)})`,
    );
  }
  const headerLength = readU32(bytes, at + 1);
  const count = readU32(bytes, at + 5);
  const room = bodyLength - FRAME_FIXED_HEADER_BYTES;
  if (headerLength > room || count > (room - headerLength) / 4) {
    throw new DinferError(
      DinferErrorCode.PROTOCOL,
      `frame header claims ${headerLength} header bytes and ${count} attachments, more than the ${bodyLength}-byte body holds`,
    );
  }
  return { headerLength, count };
}

function readU32(bytes: Uint8Array, at: number): number {
  return ((bytes[at]! << 24) | (bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) | bytes[at + 3]!) >>> 0;
}

function isHeader(value: unknown): value is MessageHeader {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  if (proto !== Object.prototype && proto !== null) return false;
  return typeof (value as { type?: unknown }).type === 'string';
}

function checkMaxFrameBytes(value: number | undefined): number {
  if (value === undefined) return DEFAULT_MAX_FRAME_BYTES;
  if (!Number.isInteger(value) || value < FRAME_FIXED_HEADER_BYTES || value > MAX_U32) {
    throw new DinferError(
      DinferErrorCode.INVALID_ARGUMENT,
      `maxFrameBytes must be an integer between ${FRAME_FIXED_HEADER_BYTES} and ${MAX_U32}, got ${String(value)}`,
    );
  }
  return value;
}

function concat(parts: readonly Uint8Array[], total: number): Uint8Array {
  const out = allocate(total);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.byteLength;
  }
  return out;
}
