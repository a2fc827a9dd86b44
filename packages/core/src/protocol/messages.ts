/**
 * The versioned message protocol: every application header is a member of the
 * {@link ProtocolMessage} union, discriminated on `type`, and {@link parseMessageHeader}
 * checks every field of an untrusted header before the application reads it.
 *
 * To add a message: declare its interface, add it to {@link ProtocolMessageMap}, and add its
 * validator to `VALIDATORS` below (the compiler insists on the last step). Raise
 * `PROTOCOL_VERSION` when an existing message changes incompatibly.
 *
 * @module
 */
import { DinferError, DinferErrorCode } from '../errors.js';
import { parseTensorDescriptors, type TensorLimits } from '../tensor/descriptor.js';
import type { TensorDescriptor } from '../tensor/types.js';
import type { AuthMessage, HelloMessage, RejectMessage, WelcomeMessage } from './handshake.js';
import { assertSafeJson, isRecord, type JsonLimits } from './json-guard.js';
import { MessageFields } from './message-fields.js';

export type {
  AuthMessage,
  HandshakeMessage,
  HelloMessage,
  RejectMessage,
  WelcomeMessage,
} from './handshake.js';

/** Liveness probe; the peer answers with a {@link PongMessage} echoing `sentAt`. */
export interface PingMessage {
  readonly type: 'ping';
  /** Sender's clock (ms since the epoch) when sent. */
  readonly sentAt: number;
}

/** Answer to a {@link PingMessage}. */
export interface PongMessage {
  readonly type: 'pong';
  /** The `sentAt` of the ping being answered. */
  readonly sentAt: number;
}

/** Generic tensor payload: the attachments hold the tensors' bytes, in descriptor order. */
export interface TensorsMessage {
  readonly type: 'tensors';
  readonly tensors: readonly TensorDescriptor[];
  /** Free-form label (e.g. which stage output this is), at most 256 characters. */
  readonly tag?: string;
}

/** An error reported by the peer as a message (requests use the connection's error replies). */
export interface ErrorMessage {
  readonly type: 'error';
  /** A `DINFER_ERR_*` code. */
  readonly code: string;
  readonly message: string;
}

/** Every protocol message by its `type`. Extend here to add a message. */
export interface ProtocolMessageMap {
  hello: HelloMessage;
  auth: AuthMessage;
  welcome: WelcomeMessage;
  reject: RejectMessage;
  ping: PingMessage;
  pong: PongMessage;
  tensors: TensorsMessage;
  error: ErrorMessage;
}

/** The `type` of any protocol message. */
export type ProtocolMessageType = keyof ProtocolMessageMap;

/** Any protocol message header (a discriminated union on `type`). */
export type ProtocolMessage = ProtocolMessageMap[ProtocolMessageType];

/** Options for {@link parseMessageHeader}. */
export interface ParseMessageOptions {
  /** Structural limits of the header JSON. Defaults: depth 16, 50 000 values, strings of 64 KiB. */
  json?: JsonLimits | undefined;
  /** Limits for tensor descriptors. Default: `maxBytes` unbounded (check again when decoding). */
  tensors?: TensorLimits | undefined;
}

type Validators = {
  readonly [K in ProtocolMessageType]: (
    fields: MessageFields,
    options: ParseMessageOptions,
  ) => ProtocolMessageMap[K];
};

const NONCE = { min: 1, max: 128 };
const PROOF = { max: 256 };
const TEXT = { max: 4096 };

const VALIDATORS: Validators = {
  hello: (f) => ({
    type: 'hello',
    protocol: f.number('protocol', { integer: true, min: 0 }),
    nonce: f.string('nonce', NONCE),
  }),
  auth: (f) => {
    const join = f.optional('join', (k) => f.string(k, NONCE));
    const joinProof = f.optional('joinProof', (k) => f.string(k, PROOF));
    return {
      type: 'auth',
      protocol: f.number('protocol', { integer: true, min: 0 }),
      nonce: f.string('nonce', NONCE),
      proof: f.string('proof', PROOF),
      ...(join === undefined ? {} : { join }),
      ...(joinProof === undefined ? {} : { joinProof }),
    };
  },
  welcome: (f) => ({
    type: 'welcome',
    protocol: f.number('protocol', { integer: true, min: 0 }),
    proof: f.string('proof', PROOF),
  }),
  reject: (f) => {
    const reason = f.string('reason', TEXT);
    const code = f.optional('code', (k) => f.string(k, { min: 1, max: 128 }));
    return { type: 'reject', reason, ...(code === undefined ? {} : { code }) };
  },
  ping: (f) => ({ type: 'ping', sentAt: f.number('sentAt') }),
  pong: (f) => ({ type: 'pong', sentAt: f.number('sentAt') }),
  tensors: (f, options) => {
    const tensors = parseTensorDescriptors(
      f.raw('tensors'),
      options.tensors ?? { maxBytes: Number.MAX_SAFE_INTEGER },
    );
    const tag = f.optional('tag', (k) => f.string(k, { max: 256 }));
    return {
      type: 'tensors',
      tensors: tensors.map((t) => t.descriptor),
      ...(tag === undefined ? {} : { tag }),
    };
  },
  error: (f) => ({
    type: 'error',
    code: f.string('code', { min: 1, max: 128 }),
    message: f.string('message', TEXT),
  }),
};

/** True when `type` names a known protocol message. */
export function isProtocolMessageType(type: unknown): type is ProtocolMessageType {
  return typeof type === 'string' && Object.hasOwn(VALIDATORS, type);
}

/**
 * Validates an untrusted header (already parsed from JSON) and returns it as a typed
 * {@link ProtocolMessage}: plain data only, bounded size and depth, no `__proto__` /
 * `constructor` / `prototype` keys, a known `type`, every field of the right type and range
 * and no unknown field. Throws `DINFER_ERR_PROTOCOL` (or `DINFER_ERR_TENSOR_INVALID` for a
 * bad tensor descriptor). Returns a fresh object: the input is never returned or mutated.
 */
export function parseMessageHeader(json: unknown, options: ParseMessageOptions = {}): ProtocolMessage {
  assertSafeJson(json, 'message header', {
    maxDepth: 16,
    maxNodes: 50_000,
    maxStringLength: 64 * 1024,
    ...options.json,
  });
  if (!isRecord(json)) throw new DinferError(DinferErrorCode.PROTOCOL, 'message header must be an object');
  const type = json.type;
  if (!isProtocolMessageType(type)) {
    throw new DinferError(
      DinferErrorCode.PROTOCOL,
      `unknown message type ${JSON.stringify(type)?.slice(0, 64)}`,
      {
        details: { type: typeof type === 'string' ? type.slice(0, 64) : typeof type },
      },
    );
  }
  const fields = new MessageFields(json, `${type} message`);
  fields.raw('type');
  const message = (VALIDATORS[type] as (f: MessageFields, o: ParseMessageOptions) => ProtocolMessage)(
    fields,
    options,
  );
  fields.finish();
  return message;
}
