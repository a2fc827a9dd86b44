/**
 * The envelope header scheme {@link createChannelConnection} puts on a {@link FrameChannel}:
 * every envelope after the handshake carries `{ type: 'rpc', kind, ... }`, and the
 * application's own header travels inside as `body`.
 *
 * | kind       | fields             | meaning                                              |
 * |------------|--------------------|------------------------------------------------------|
 * | `request`  | `id`, `body`       | a request; the attachments are the request's         |
 * | `response` | `id`, `body`       | the reply to the sender's request `id`               |
 * | `error`    | `id`, `error`      | the handler of request `id` failed                   |
 * | `message`  | `body`             | a one-way message                                    |
 * | `cancel`   | `id`               | the requester gave up on request `id`                |
 * | `close`    | `error?`           | the sender is closing the connection (and why)       |
 *
 * Ids are chosen by the requester, so each direction has its own id space.
 *
 * @module
 */
import { DinferError, DinferErrorCode } from '../errors.js';
import { assertSafeJson, isRecord } from '../protocol/json-guard.js';
import type { MessageHeader } from '../transport.js';

/** An error as it crosses the wire. */
export interface RpcErrorBody {
  /** A `DINFER_ERR_*` code (or another short code a peer sent). */
  readonly code: string;
  /** Human-readable description. */
  readonly message: string;
}

/** A request: the requester's id and the application header. */
export interface RpcRequestHeader {
  readonly type: 'rpc';
  readonly kind: 'request';
  readonly id: number;
  readonly body: MessageHeader;
}

/** The successful reply to request `id`. */
export interface RpcResponseHeader {
  readonly type: 'rpc';
  readonly kind: 'response';
  readonly id: number;
  readonly body: MessageHeader;
}

/** The failed reply to request `id`. */
export interface RpcErrorHeader {
  readonly type: 'rpc';
  readonly kind: 'error';
  readonly id: number;
  readonly error: RpcErrorBody;
}

/** A one-way message. */
export interface RpcMessageHeader {
  readonly type: 'rpc';
  readonly kind: 'message';
  readonly body: MessageHeader;
}

/** The requester no longer waits for request `id`; the handler's signal aborts. */
export interface RpcCancelHeader {
  readonly type: 'rpc';
  readonly kind: 'cancel';
  readonly id: number;
}

/** The sender closes the connection; `error` says why when it was not a clean close. */
export interface RpcCloseHeader {
  readonly type: 'rpc';
  readonly kind: 'close';
  readonly error?: RpcErrorBody;
}

/** Any connection-layer header. */
export type RpcHeader =
  | RpcRequestHeader
  | RpcResponseHeader
  | RpcErrorHeader
  | RpcMessageHeader
  | RpcCancelHeader
  | RpcCloseHeader;

/** Longest error message sent to a peer; longer ones are truncated. */
export const MAX_RPC_ERROR_MESSAGE = 4096;
const MAX_CODE = 128;
const MAX_TYPE = 128;

const KEYS: Record<RpcHeader['kind'], { required: readonly string[]; optional: readonly string[] }> = {
  request: { required: ['id', 'body'], optional: [] },
  response: { required: ['id', 'body'], optional: [] },
  error: { required: ['id', 'error'], optional: [] },
  message: { required: ['body'], optional: [] },
  cancel: { required: ['id'], optional: [] },
  close: { required: [], optional: ['error'] },
};

function protocolError(reason: string): DinferError {
  return new DinferError(DinferErrorCode.PROTOCOL, `invalid rpc header: ${reason}`);
}

function checkId(value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw protocolError('id must be a non-negative safe integer');
  }
  return value;
}

function checkBody(value: unknown): MessageHeader {
  if (!isRecord(value) || typeof value.type !== 'string' || value.type.length === 0) {
    throw protocolError('body must be an object with a non-empty string type');
  }
  if (value.type.length > MAX_TYPE) throw protocolError('body type too long');
  return value as MessageHeader;
}

function checkError(value: unknown): RpcErrorBody {
  if (
    !isRecord(value) ||
    typeof value.code !== 'string' ||
    value.code.length === 0 ||
    value.code.length > MAX_CODE ||
    typeof value.message !== 'string' ||
    value.message.length > MAX_RPC_ERROR_MESSAGE ||
    Object.keys(value).length !== 2
  ) {
    throw protocolError('error must be { code, message } strings');
  }
  return { code: value.code, message: value.message };
}

/**
 * Validates an incoming connection-layer header and returns it typed. Unknown kinds, missing
 * or extra fields, and unsafe JSON throw `DINFER_ERR_PROTOCOL`.
 */
export function parseRpcHeader(header: unknown): RpcHeader {
  assertSafeJson(header, 'rpc header');
  if (!isRecord(header) || header.type !== 'rpc') throw protocolError('type must be "rpc"');
  const kind = header.kind;
  if (typeof kind !== 'string' || !Object.hasOwn(KEYS, kind)) {
    throw protocolError(`unknown kind ${JSON.stringify(kind)?.slice(0, 64)}`);
  }
  const k = kind as RpcHeader['kind'];
  const { required, optional } = KEYS[k];
  for (const key of Object.keys(header)) {
    if (key !== 'type' && key !== 'kind' && !required.includes(key) && !optional.includes(key)) {
      throw protocolError(`unexpected field "${key}" in ${k}`);
    }
  }
  for (const key of required) {
    if (!Object.hasOwn(header, key)) throw protocolError(`missing field "${key}" in ${k}`);
  }
  switch (k) {
    case 'request':
      return { type: 'rpc', kind: k, id: checkId(header.id), body: checkBody(header.body) };
    case 'response':
      return { type: 'rpc', kind: k, id: checkId(header.id), body: checkBody(header.body) };
    case 'error':
      return { type: 'rpc', kind: k, id: checkId(header.id), error: checkError(header.error) };
    case 'message':
      return { type: 'rpc', kind: k, body: checkBody(header.body) };
    case 'cancel':
      return { type: 'rpc', kind: k, id: checkId(header.id) };
    case 'close':
      return header.error === undefined
        ? { type: 'rpc', kind: k }
        : { type: 'rpc', kind: k, error: checkError(header.error) };
  }
}

/** The wire form of an error: its code (`DINFER_ERR_INTERNAL` for foreign errors) and message. */
export function toRpcError(error: unknown): RpcErrorBody {
  const code = error instanceof DinferError ? error.code : DinferErrorCode.INTERNAL;
  const message = error instanceof Error ? error.message : String(error);
  return { code, message: message.slice(0, MAX_RPC_ERROR_MESSAGE) };
}
