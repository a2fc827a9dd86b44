/**
 * Strict checks of everything that arrives in a Socket.IO event, before any of it is used,
 * and of what is about to be sent.
 *
 * @module
 */
import {
  assertSafeJson,
  DinferError,
  DinferErrorCode,
  type Envelope,
  FORBIDDEN_KEYS,
  isRecord,
  type MessageHeader,
} from '@dinfer/core';
import type { WireError } from './events.js';

/** Limits applied to incoming and outgoing envelopes. */
export interface EnvelopeLimits {
  readonly maxFrameBytes: number;
  readonly maxAttachments: number;
}

const MAX_TYPE_LENGTH = 128;
const MAX_ERROR_MESSAGE = 4096;
const MAX_ERROR_CODE = 128;
/** Headers are small JSON; bound them so a hostile peer cannot make us walk megabytes. */
const HEADER_LIMITS = { maxDepth: 32, maxNodes: 100_000, maxStringLength: 1 << 20 } as const;

function protocol(message: string): DinferError {
  return new DinferError(DinferErrorCode.PROTOCOL, message);
}

/** Returns `value` as a Uint8Array view (no copy) when it is binary, else `undefined`. */
function asBytes(value: unknown): Uint8Array | undefined {
  if (value instanceof Uint8Array) {
    // Buffers become plain Uint8Array views over the same memory.
    return value.constructor === Uint8Array
      ? value
      : new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  }
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  return undefined;
}

/** Checks an incoming header: plain JSON data, an object with a non-empty string `type`. */
export function readHeader(value: unknown, what: string): MessageHeader {
  if (
    !isRecord(value) ||
    typeof value.type !== 'string' ||
    value.type.length === 0 ||
    value.type.length > MAX_TYPE_LENGTH
  ) {
    throw protocol(`${what}: header must be an object with a non-empty string "type"`);
  }
  if (!isFlatJson(value)) assertSafeJson(value, `${what} header`, HEADER_LIMITS);
  return value as MessageHeader;
}

/**
 * Fast path of the header check for the common case: a plain object whose values are all
 * primitives (short strings, finite numbers, booleans, null) and whose keys are all safe.
 * Anything else goes through the full {@link assertSafeJson} walk.
 */
function isFlatJson(value: Record<string, unknown>): boolean {
  if (Object.getPrototypeOf(value) !== Object.prototype) return false;
  let count = 0;
  for (const key in value) {
    if (++count > 64 || FORBIDDEN_KEYS.has(key)) return false;
    const v = value[key];
    switch (typeof v) {
      case 'string':
        if (v.length > HEADER_LIMITS.maxStringLength) return false;
        break;
      case 'number':
        if (!Number.isFinite(v)) return false;
        break;
      case 'boolean':
        break;
      case 'object':
        if (v !== null) return false;
        break;
      default:
        return false;
    }
  }
  return Object.getOwnPropertySymbols(value).length === 0;
}

/** Checks incoming attachments: an array of binary parts within the count and size limits. */
export function readAttachments(value: unknown, limits: EnvelopeLimits, what: string): Uint8Array[] {
  if (!Array.isArray(value)) throw protocol(`${what}: attachments must be an array`);
  if (value.length > limits.maxAttachments) {
    throw protocol(`${what}: ${value.length} attachments, at most ${limits.maxAttachments} allowed`);
  }
  const out: Uint8Array[] = new Array(value.length);
  let total = 0;
  for (let i = 0; i < value.length; i++) {
    const bytes = asBytes(value[i]);
    if (bytes === undefined) throw protocol(`${what}: attachment ${i} is not binary`);
    total += bytes.byteLength;
    out[i] = bytes;
  }
  if (total > limits.maxFrameBytes) {
    throw new DinferError(
      DinferErrorCode.FRAME_TOO_LARGE,
      `${what}: ${total} attachment bytes exceed maxFrameBytes ${limits.maxFrameBytes}`,
      { details: { bytes: total, maxFrameBytes: limits.maxFrameBytes } },
    );
  }
  return out;
}

/** Checks an incoming request id: a non-negative safe integer. */
export function readId(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw protocol(`${what}: id must be a non-negative safe integer`);
  }
  return value;
}

/** Checks an incoming wire error `{ code, message }`. */
export function readWireError(value: unknown, what: string): WireError {
  if (
    !isRecord(value) ||
    typeof value.code !== 'string' ||
    value.code.length === 0 ||
    value.code.length > MAX_ERROR_CODE ||
    typeof value.message !== 'string' ||
    value.message.length > MAX_ERROR_MESSAGE
  ) {
    throw protocol(`${what}: error must be { code, message } strings`);
  }
  return { code: value.code, message: value.message };
}

/** Checks the argument count of an incoming event. */
export function expectArgs(args: readonly unknown[], count: number, what: string): void {
  if (args.length !== count) throw protocol(`${what}: expected ${count} arguments, got ${args.length}`);
}

/**
 * Checks an envelope the application hands us (to send, or as a handler's reply) and returns
 * its size on the wire. Throws `INVALID_ARGUMENT` for a malformed one and `FRAME_TOO_LARGE`
 * above the limits.
 */
export function checkOutgoing(envelope: Envelope, limits: EnvelopeLimits, what: string): number {
  if (
    typeof envelope !== 'object' ||
    envelope === null ||
    !isRecord(envelope.header) ||
    typeof envelope.header.type !== 'string' ||
    envelope.header.type.length === 0 ||
    !Array.isArray(envelope.attachments)
  ) {
    throw new DinferError(
      DinferErrorCode.INVALID_ARGUMENT,
      `${what} must be { header: { type: string, ... }, attachments: Uint8Array[] }`,
    );
  }
  const attachments = envelope.attachments;
  if (attachments.length > limits.maxAttachments) {
    throw new DinferError(
      DinferErrorCode.INVALID_ARGUMENT,
      `${what} has ${attachments.length} attachments, at most ${limits.maxAttachments} allowed`,
    );
  }
  let total = 0;
  for (const part of attachments) {
    if (!(part instanceof Uint8Array)) {
      throw new DinferError(
        DinferErrorCode.INVALID_ARGUMENT,
        `${what}: every attachment must be a Uint8Array`,
      );
    }
    total += part.byteLength;
  }
  let headerBytes = flatHeaderBound(envelope.header);
  if (headerBytes < 0 || total + headerBytes > limits.maxFrameBytes) {
    // Nested (or possibly too large): measure exactly, which also proves it serialisable.
    try {
      headerBytes = JSON.stringify(envelope.header).length;
    } catch (error) {
      throw new DinferError(DinferErrorCode.INVALID_ARGUMENT, `${what}: header is not JSON-serialisable`, {
        cause: error,
      });
    }
  }
  total += headerBytes;
  if (total > limits.maxFrameBytes) {
    throw new DinferError(
      DinferErrorCode.FRAME_TOO_LARGE,
      `${what} is ${total} bytes, above maxFrameBytes ${limits.maxFrameBytes}`,
      { details: { bytes: total, maxFrameBytes: limits.maxFrameBytes } },
    );
  }
  return total;
}

/**
 * An upper bound of the JSON length of a flat header (primitive values only; every character
 * counted as a worst-case `\uXXXX` escape), or -1 when the header is not flat. Spares a
 * `JSON.stringify` per message: only headers whose bound comes near the frame limit, or that
 * nest, get measured exactly.
 */
function flatHeaderBound(header: Record<string, unknown>): number {
  let bound = 2;
  for (const key in header) {
    const value = header[key];
    switch (typeof value) {
      case 'string':
        bound += value.length * 6 + 2;
        break;
      case 'number':
        if (!Number.isFinite(value)) return -1;
        bound += 24;
        break;
      case 'boolean':
        bound += 5;
        break;
      case 'object':
        if (value !== null) return -1;
        bound += 4;
        break;
      default:
        return -1;
    }
    bound += key.length * 6 + 4;
  }
  return bound;
}

/** The wire form of an error: its code (`DINFER_ERR_INTERNAL` for foreign errors) and message. */
export function toWireError(error: unknown): WireError {
  const code = error instanceof DinferError ? error.code : DinferErrorCode.INTERNAL;
  const message = error instanceof Error ? error.message : String(error);
  return { code, message: message.slice(0, MAX_ERROR_MESSAGE) };
}
