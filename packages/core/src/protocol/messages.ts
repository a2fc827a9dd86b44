/**
 * The protocol's one vocabulary: every application header the master and its workers (and
 * the handshake before them) exchange is a member of the {@link ProtocolMessage} union,
 * discriminated on `type`, and {@link parseMessage} checks every field of an untrusted header
 * before anyone reads it, returning a fresh typed object (never the input).
 *
 * | direction        | request              | reply                 | purpose                                   |
 * |------------------|----------------------|-----------------------|-------------------------------------------|
 * | either           | `hello` `auth` `welcome` `reject` |          | the handshake (see `handshake.ts`)        |
 * | worker -> master | `join`               | `joined`              | announce capabilities and cached blobs    |
 * | master -> worker | `blob.status`        | `blob.status.result`  | which blobs are missing / partly received |
 * | master -> worker | `blob.chunk`         | `blob.ack`            | one chunk of a blob (attachment 0)        |
 * | master -> worker | `blob.delta`         | `blob.ack`            | a blob as a delta against a cached blob   |
 * | master -> worker | `stage.load`         | `stage.loaded`        | build a stage from cached blobs, warm up  |
 * | master -> worker | `stage.unload`       | `ok`                  | drop a stage                              |
 * | master -> worker | `infer`              | `infer.result`        | run a stage on tensors (attachments)      |
 * | master -> worker | `ping`               | `pong`                | health check: round trip and current load |
 * | worker -> master | `drain` (one-way)    |                       | the worker is shutting down               |
 * | any              | `tensors`, `error`   |                       | generic tensor payload, error report      |
 *
 * To add a message: declare its type, add it to {@link ProtocolMessageMap}, and add its
 * validator to `VALIDATORS` below (the compiler insists on the last step). Raise
 * `PROTOCOL_VERSION` when an existing message changes incompatibly. Messages are declared as
 * type aliases, so each one is a valid envelope header as it is.
 *
 * @module
 */
import { DinferError, DinferErrorCode } from '../errors.js';
import type { WorkerCapabilities, WorkerLoad } from '../scheduler.js';
import { DELTA_COMPRESSIONS, type DeltaCompression } from '../ship/delta.js';
import { parseTensorDescriptors, type TensorLimits } from '../tensor/descriptor.js';
import type { TensorDescriptor } from '../tensor/types.js';
import type { Envelope } from '../transport.js';
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

/** Identifies one loaded stage on a worker: `<model>@<version>#<stage>`. */
export type StageKey = string;

/** Builds the {@link StageKey} of a stage. */
export function stageKey(model: string, version: string, stage: number): StageKey {
  return `${model}@${version}#${stage}`;
}

/** A worker introduces itself. `blobs` lists the SHA-256 of every blob in its cache. */
export type JoinMessage = {
  readonly type: 'join';
  readonly name: string;
  readonly capabilities: WorkerCapabilities;
  readonly blobs: readonly string[];
  /**
   * Whether the worker sends heartbeats when the master asks (a heartbeat sender is
   * configured). A worker that sends none is watched by the master's health pings only.
   */
  readonly heartbeats?: boolean | undefined;
};

/** The master accepts a worker and tells it where to send heartbeats. */
export type JoinedMessage = {
  readonly type: 'joined';
  readonly workerId: string;
  /** UDP port of the master's heartbeat receiver (on the master's host), 0 when disabled. */
  readonly heartbeatPort: number;
  readonly heartbeatIntervalMs: number;
};

/** Asks which of `blobs` the worker lacks. */
export type BlobStatusMessage = {
  readonly type: 'blob.status';
  readonly blobs: readonly string[];
};

/** The worker's answer: blobs it lacks entirely, and partial ones with the bytes it holds. */
export type BlobStatusResultMessage = {
  readonly type: 'blob.status.result';
  readonly missing: readonly string[];
  readonly partial: readonly { readonly sha256: string; readonly receivedBytes: number }[];
};

/**
 * One chunk of a blob. `offset` and `totalBytes` count raw (uncompressed) bytes; the chunk
 * is attachment 0, deflated when `compression` says so. A chunk must start where the
 * worker's received bytes end (resume point); `final` chunks trigger the hash check.
 */
export type BlobChunkMessage = {
  readonly type: 'blob.chunk';
  readonly sha256: string;
  readonly offset: number;
  readonly rawBytes: number;
  readonly totalBytes: number;
  readonly compression: 'none' | 'deflate';
  readonly final: boolean;
};

/**
 * A whole blob sent as a delta against `base`, a blob the worker holds (attachment 0: the
 * compressed XOR of the two, see `delta.ts`). The worker rebuilds the blob, checks its
 * SHA-256 against `sha256` before storing it (`HASH_MISMATCH` otherwise, nothing stored) and
 * answers `MODEL_NOT_FOUND` when it lacks the base. Deltas are not chunked.
 */
export type BlobDeltaMessage = {
  readonly type: 'blob.delta';
  /** SHA-256 of the blob to rebuild. */
  readonly sha256: string;
  /** SHA-256 of the base blob (same length as the target). */
  readonly base: string;
  readonly totalBytes: number;
  readonly compression: DeltaCompression;
};

/** Acknowledges a chunk: the worker now holds `receivedBytes` raw bytes of the blob. */
export type BlobAckMessage = {
  readonly type: 'blob.ack';
  readonly sha256: string;
  readonly receivedBytes: number;
  /** True once the whole blob is stored and its hash verified. */
  readonly complete: boolean;
};

/** Builds a stage model from cached blobs (its model.json and one blob per weight tensor) and warms it up. */
export type StageLoadMessage = {
  readonly type: 'stage.load';
  readonly key: StageKey;
  /** SHA-256 of the stage's model.json bytes (topology + weights manifest). */
  readonly topology: string;
  /** SHA-256 of each weight tensor's blob, in the manifest's order (a hash may repeat). */
  readonly weights: readonly string[];
  /** Tensor names of the stage's inputs and outputs, in the stage model's order. */
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
};

/** The stage is ready; `warmupMs` is the time of one warm-up run. */
export type StageLoadedMessage = {
  readonly type: 'stage.loaded';
  readonly key: StageKey;
  readonly warmupMs: number;
};

/** Drops a stage from the worker's memory. */
export type StageUnloadMessage = {
  readonly type: 'stage.unload';
  readonly key: StageKey;
};

/** Generic success reply. */
export type OkMessage = {
  readonly type: 'ok';
};

/** Runs stage `key` on the tensors in the attachments (described by `tensors`). */
export type InferMessage = {
  readonly type: 'infer';
  readonly key: StageKey;
  readonly requestId: string;
  readonly tensors: readonly TensorDescriptor[];
};

/** The stage's outputs, with the time spent computing and waiting in the worker's queue. */
export type InferResultMessage = {
  readonly type: 'infer.result';
  readonly tensors: readonly TensorDescriptor[];
  readonly computeMs: number;
  readonly queueMs: number;
};

/** Health check; the peer answers with a {@link PongMessage} echoing `sentAt`. */
export type PingMessage = {
  readonly type: 'ping';
  /** Sender's clock (ms since the epoch) when sent. */
  readonly sentAt: number;
};

/** Answer to a {@link PingMessage}: its `sentAt` (so the sender measures the round trip) and the worker's load. */
export type PongMessage = {
  readonly type: 'pong';
  readonly sentAt: number;
  readonly load: WorkerLoad;
};

/** The worker is shutting down: route nothing new to it. */
export type DrainMessage = {
  readonly type: 'drain';
  readonly reason: string;
};

/** Generic tensor payload: the attachments hold the tensors' bytes, in descriptor order. */
export type TensorsMessage = {
  readonly type: 'tensors';
  readonly tensors: readonly TensorDescriptor[];
  /** Free-form label (e.g. which stage output this is), at most 256 characters. */
  readonly tag?: string;
};

/** An error reported by the peer as a message (requests use the connection's error replies). */
export type ErrorMessage = {
  readonly type: 'error';
  /** A `DINFER_ERR_*` code. */
  readonly code: string;
  readonly message: string;
};

/** Every protocol message by its `type`. Extend here to add a message. */
export interface ProtocolMessageMap {
  hello: HelloMessage;
  auth: AuthMessage;
  welcome: WelcomeMessage;
  reject: RejectMessage;
  join: JoinMessage;
  joined: JoinedMessage;
  'blob.status': BlobStatusMessage;
  'blob.status.result': BlobStatusResultMessage;
  'blob.chunk': BlobChunkMessage;
  'blob.delta': BlobDeltaMessage;
  'blob.ack': BlobAckMessage;
  'stage.load': StageLoadMessage;
  'stage.loaded': StageLoadedMessage;
  'stage.unload': StageUnloadMessage;
  ok: OkMessage;
  infer: InferMessage;
  'infer.result': InferResultMessage;
  ping: PingMessage;
  pong: PongMessage;
  drain: DrainMessage;
  tensors: TensorsMessage;
  error: ErrorMessage;
}

/** The `type` of any protocol message. */
export type ProtocolMessageType = keyof ProtocolMessageMap;

/** Any protocol message header (a discriminated union on `type`). */
export type ProtocolMessage = ProtocolMessageMap[ProtocolMessageType];

/** Options for {@link parseMessageHeader} and {@link parseMessage}. */
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
const NAME = { min: 1, max: 1024 };
const COUNT = { integer: true, min: 0 };
const SHA256 = /^[0-9a-f]{64}$/;
const MAX_BLOBS = 100_000;

function sha(fields: MessageFields, field: string, value: unknown): string {
  if (typeof value !== 'string' || !SHA256.test(value)) fields.fail(field, 'must hold SHA-256 hex strings');
  return value;
}

function shaList(fields: MessageFields, field: string): string[] {
  return fields.list(field, (value) => sha(fields, field, value), { max: MAX_BLOBS });
}

function nameList(fields: MessageFields, field: string): string[] {
  return fields.list(field, (value) => {
    if (typeof value !== 'string' || value.length < NAME.min || value.length > NAME.max) {
      fields.fail(field, `must hold names of ${NAME.min} to ${NAME.max} characters`);
    }
    return value;
  });
}

function descriptors(fields: MessageFields, options: ParseMessageOptions): TensorDescriptor[] {
  return parseTensorDescriptors(
    fields.raw('tensors'),
    options.tensors ?? { maxBytes: Number.MAX_SAFE_INTEGER },
  ).map((t) => t.descriptor);
}

function capabilities(f: MessageFields): WorkerCapabilities {
  return {
    backend: f.string('backend', { min: 1, max: 64 }),
    cores: f.number('cores', { integer: true, min: 1 }),
    memoryBytes: f.number('memoryBytes', COUNT),
    score: f.number('score', { min: 0 }),
  };
}

function load(f: MessageFields): WorkerLoad {
  return {
    cpu: f.number('cpu', { min: 0 }),
    freeMemoryBytes: f.number('freeMemoryBytes', { min: 0 }),
    queueLength: f.number('queueLength', { min: 0 }),
    latencyMs: f.number('latencyMs', { min: 0 }),
  };
}

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
  join: (f) => {
    const heartbeats = f.optional('heartbeats', (k) => f.boolean(k));
    return {
      type: 'join',
      name: f.string('name', { min: 1, max: 256 }),
      capabilities: f.object('capabilities', capabilities),
      blobs: shaList(f, 'blobs'),
      ...(heartbeats === undefined ? {} : { heartbeats }),
    };
  },
  joined: (f) => ({
    type: 'joined',
    workerId: f.string('workerId', { min: 1, max: 256 }),
    heartbeatPort: f.number('heartbeatPort', { integer: true, min: 0, max: 65535 }),
    heartbeatIntervalMs: f.number('heartbeatIntervalMs', COUNT),
  }),
  'blob.status': (f) => ({ type: 'blob.status', blobs: shaList(f, 'blobs') }),
  'blob.status.result': (f) => ({
    type: 'blob.status.result',
    missing: shaList(f, 'missing'),
    partial: f.list(
      'partial',
      (value) => {
        if (!isRecord(value)) return f.fail('partial', 'must hold {sha256, receivedBytes} objects');
        const entry = new MessageFields(value, 'blob.status.result partial entry');
        const parsed = {
          sha256: sha(entry, 'sha256', entry.raw('sha256')),
          receivedBytes: entry.number('receivedBytes', COUNT),
        };
        entry.finish();
        return parsed;
      },
      { max: MAX_BLOBS },
    ),
  }),
  'blob.chunk': (f) => {
    const message: BlobChunkMessage = {
      type: 'blob.chunk',
      sha256: sha(f, 'sha256', f.raw('sha256')),
      offset: f.number('offset', COUNT),
      rawBytes: f.number('rawBytes', COUNT),
      totalBytes: f.number('totalBytes', COUNT),
      compression: f.oneOf('compression', ['none', 'deflate'] as const),
      final: f.boolean('final'),
    };
    if (message.offset + message.rawBytes > message.totalBytes)
      f.fail('rawBytes', 'extends the chunk past totalBytes');
    return message;
  },
  'blob.delta': (f) => ({
    type: 'blob.delta',
    sha256: sha(f, 'sha256', f.raw('sha256')),
    base: sha(f, 'base', f.raw('base')),
    totalBytes: f.number('totalBytes', COUNT),
    compression: f.oneOf('compression', DELTA_COMPRESSIONS),
  }),
  'blob.ack': (f) => ({
    type: 'blob.ack',
    sha256: sha(f, 'sha256', f.raw('sha256')),
    receivedBytes: f.number('receivedBytes', COUNT),
    complete: f.boolean('complete'),
  }),
  'stage.load': (f) => ({
    type: 'stage.load',
    key: f.string('key', NAME),
    topology: sha(f, 'topology', f.raw('topology')),
    weights: shaList(f, 'weights'),
    inputs: nameList(f, 'inputs'),
    outputs: nameList(f, 'outputs'),
  }),
  'stage.loaded': (f) => ({
    type: 'stage.loaded',
    key: f.string('key', NAME),
    warmupMs: f.number('warmupMs'),
  }),
  'stage.unload': (f) => ({ type: 'stage.unload', key: f.string('key', NAME) }),
  ok: () => ({ type: 'ok' }),
  infer: (f, options) => ({
    type: 'infer',
    key: f.string('key', NAME),
    requestId: f.string('requestId', { min: 1, max: 256 }),
    tensors: descriptors(f, options),
  }),
  'infer.result': (f, options) => ({
    type: 'infer.result',
    tensors: descriptors(f, options),
    computeMs: f.number('computeMs'),
    queueMs: f.number('queueMs'),
  }),
  ping: (f) => ({ type: 'ping', sentAt: f.number('sentAt') }),
  pong: (f) => ({ type: 'pong', sentAt: f.number('sentAt'), load: f.object('load', load) }),
  drain: (f) => ({ type: 'drain', reason: f.string('reason', { max: 1024 }) }),
  tensors: (f, options) => {
    const tensors = descriptors(f, options);
    const tag = f.optional('tag', (k) => f.string(k, { max: 256 }));
    return { type: 'tensors', tensors, ...(tag === undefined ? {} : { tag }) };
  },
  error: (f) => ({
    type: 'error',
    code: f.string('code', { min: 1, max: 128 }),
    message: f.string('message', TEXT),
  }),
};

/** The `type` of every protocol message, in declaration order. */
export const PROTOCOL_MESSAGE_TYPES: readonly ProtocolMessageType[] = Object.freeze(
  Object.keys(VALIDATORS).filter(isProtocolMessageType),
);

/** True when `type` names a known protocol message. */
export function isProtocolMessageType(type: unknown): type is ProtocolMessageType {
  return typeof type === 'string' && Object.hasOwn(VALIDATORS, type);
}

function validate<K extends ProtocolMessageType>(
  type: K,
  fields: MessageFields,
  options: ParseMessageOptions,
): ProtocolMessageMap[K] {
  const validator: Validators[K] = VALIDATORS[type];
  return validator(fields, options);
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
  const message = validate(type, fields, options);
  fields.finish();
  return message;
}

/**
 * {@link parseMessageHeader} for a header that must be of one `type` (e.g. the reply to a
 * request): throws `DINFER_ERR_PROTOCOL` naming both types when it is another message.
 */
export function parseMessage<K extends ProtocolMessageType>(
  json: unknown,
  type: K,
  options: ParseMessageOptions = {},
): ProtocolMessageMap[K] {
  const message = parseMessageHeader(json, options);
  if (!isMessageOfType(message, type)) {
    throw new DinferError(DinferErrorCode.PROTOCOL, `expected a ${type} message, got ${message.type}`);
  }
  return message;
}

function isMessageOfType<K extends ProtocolMessageType>(
  message: ProtocolMessage,
  type: K,
): message is ProtocolMessageMap[K] {
  return message.type === type;
}

/** Wraps a message (and its binary attachments) into an envelope to send. */
export function messageEnvelope(message: ProtocolMessage, attachments: readonly Uint8Array[] = []): Envelope {
  return { header: message, attachments };
}
