/**
 * The cluster runtime's messages: the application headers the coordinator (master) and the
 * worker runtime exchange inside {@link Connection} requests and one-way messages.
 *
 * | direction        | request              | reply                 | purpose                                   |
 * |------------------|----------------------|-----------------------|-------------------------------------------|
 * | worker -> master | `join`               | `joined`              | announce capabilities and cached blobs    |
 * | master -> worker | `blob.status`        | `blob.status.result`  | which blobs are missing / partly received |
 * | master -> worker | `blob.chunk`         | `blob.ack`            | one chunk of a blob (attachment 0)        |
 * | master -> worker | `blob.delta`         | `blob.ack`            | a blob as a delta against a cached blob   |
 * | master -> worker | `stage.load`         | `stage.loaded`        | build a stage from cached blobs, warm up  |
 * | master -> worker | `stage.unload`       | `ok`                  | drop a stage                              |
 * | master -> worker | `infer`              | `infer.result`        | run a stage on tensors (attachments)      |
 * | master -> worker | `ping`               | `pong`                | health check with current load            |
 * | worker -> master | `drain` (one-way)    |                       | the worker is shutting down               |
 *
 * Every incoming header is checked with {@link parseRuntimeMessage} before use.
 *
 * @module
 */
import { DinferError, DinferErrorCode } from '../errors.js';
import type { WorkerCapabilities, WorkerLoad } from '../scheduler.js';
import { DELTA_COMPRESSIONS, type DeltaCompression } from '../ship/delta.js';
import type { TensorDescriptor } from '../tensor/types.js';

/** Identifies one loaded stage on a worker: `<model>@<version>#<stage>`. */
export type StageKey = string;

/** Builds the {@link StageKey} of a stage. */
export function stageKey(model: string, version: string, stage: number): StageKey {
  return `${model}@${version}#${stage}`;
}

/** A worker introduces itself. `blobs` lists the SHA-256 of every blob in its disk cache. */
export interface JoinMessage {
  readonly type: 'join';
  readonly name: string;
  readonly capabilities: WorkerCapabilities;
  readonly blobs: readonly string[];
}

/** The master accepts a worker and tells it where to send heartbeats. */
export interface JoinedMessage {
  readonly type: 'joined';
  readonly workerId: string;
  /** UDP port of the master's heartbeat receiver (on the master's host), 0 when disabled. */
  readonly heartbeatPort: number;
  readonly heartbeatIntervalMs: number;
}

/** Asks which of `blobs` the worker lacks. */
export interface BlobStatusMessage {
  readonly type: 'blob.status';
  readonly blobs: readonly string[];
}

/** The worker's answer: blobs it lacks entirely, and partial ones with the bytes it holds. */
export interface BlobStatusResultMessage {
  readonly type: 'blob.status.result';
  readonly missing: readonly string[];
  readonly partial: readonly { readonly sha256: string; readonly receivedBytes: number }[];
}

/**
 * One chunk of a blob. `offset` and `totalBytes` count raw (uncompressed) bytes; the chunk
 * is attachment 0, deflated when `compression` says so. A chunk must start where the
 * worker's received bytes end (resume point); `final` chunks trigger the hash check.
 */
export interface BlobChunkMessage {
  readonly type: 'blob.chunk';
  readonly sha256: string;
  readonly offset: number;
  readonly rawBytes: number;
  readonly totalBytes: number;
  readonly compression: 'none' | 'deflate';
  readonly final: boolean;
}

/**
 * A whole blob sent as a delta against `base`, a blob the worker holds (attachment 0: the
 * compressed XOR of the two, see `delta.ts`). The worker rebuilds the blob, checks its
 * SHA-256 against `sha256` before storing it (`HASH_MISMATCH` otherwise, nothing stored) and
 * answers `MODEL_NOT_FOUND` when it lacks the base. Deltas are not chunked.
 */
export interface BlobDeltaMessage {
  readonly type: 'blob.delta';
  /** SHA-256 of the blob to rebuild. */
  readonly sha256: string;
  /** SHA-256 of the base blob (same length as the target). */
  readonly base: string;
  readonly totalBytes: number;
  readonly compression: DeltaCompression;
}

/** Acknowledges a chunk: the worker now holds `receivedBytes` raw bytes of the blob. */
export interface BlobAckMessage {
  readonly type: 'blob.ack';
  readonly sha256: string;
  readonly receivedBytes: number;
  /** True once the whole blob is stored and its hash verified. */
  readonly complete: boolean;
}

/** Builds a stage model from cached blobs (its model.json and one blob per weight tensor) and warms it up. */
export interface StageLoadMessage {
  readonly type: 'stage.load';
  readonly key: StageKey;
  /** SHA-256 of the stage's model.json bytes (topology + weights manifest). */
  readonly topology: string;
  /** SHA-256 of each weight tensor's blob, in the manifest's order (a hash may repeat). */
  readonly weights: readonly string[];
  /** Tensor names of the stage's inputs and outputs, in the stage model's order. */
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
}

/** The stage is ready; `warmupMs` is the time of one warm-up run. */
export interface StageLoadedMessage {
  readonly type: 'stage.loaded';
  readonly key: StageKey;
  readonly warmupMs: number;
}

/** Drops a stage from the worker's memory. */
export interface StageUnloadMessage {
  readonly type: 'stage.unload';
  readonly key: StageKey;
}

/** Generic success reply. */
export interface OkMessage {
  readonly type: 'ok';
}

/** Runs stage `key` on the tensors in the attachments (described by `tensors`). */
export interface InferMessage {
  readonly type: 'infer';
  readonly key: StageKey;
  readonly requestId: string;
  readonly tensors: readonly TensorDescriptor[];
}

/** The stage's outputs, with the time spent computing and waiting in the worker's queue. */
export interface InferResultMessage {
  readonly type: 'infer.result';
  readonly tensors: readonly TensorDescriptor[];
  readonly computeMs: number;
  readonly queueMs: number;
}

/** Health check. */
export interface HealthPingMessage {
  readonly type: 'ping';
}

/** Health check answer with the worker's load. */
export interface HealthPongMessage {
  readonly type: 'pong';
  readonly load: WorkerLoad;
}

/** The worker is shutting down: route nothing new to it. */
export interface DrainMessage {
  readonly type: 'drain';
  readonly reason: string;
}

/** Every runtime message. */
export type RuntimeMessage =
  | JoinMessage
  | JoinedMessage
  | BlobStatusMessage
  | BlobStatusResultMessage
  | BlobChunkMessage
  | BlobDeltaMessage
  | BlobAckMessage
  | StageLoadMessage
  | StageLoadedMessage
  | StageUnloadMessage
  | OkMessage
  | InferMessage
  | InferResultMessage
  | HealthPingMessage
  | HealthPongMessage
  | DrainMessage;

/** The `type` of every runtime message. */
export type RuntimeMessageType = RuntimeMessage['type'];

type Check = (value: Record<string, unknown>) => string | undefined;

const SHA256 = /^[0-9a-f]{64}$/;
const isString = (v: unknown, max = 1024): v is string =>
  typeof v === 'string' && v.length > 0 && v.length <= max;
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isFiniteNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isSha = (v: unknown): v is string => typeof v === 'string' && SHA256.test(v);
const isShaList = (v: unknown): boolean => Array.isArray(v) && v.length <= 100_000 && v.every(isSha);
const isNameList = (v: unknown): boolean =>
  Array.isArray(v) && v.length <= 10_000 && v.every((s) => isString(s));
const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

function capabilitiesProblem(v: unknown): string | undefined {
  if (!isRecord(v)) return 'capabilities must be an object';
  if (!isString(v.backend, 64)) return 'capabilities.backend must be a string';
  if (!isCount(v.cores) || v.cores < 1) return 'capabilities.cores must be a positive integer';
  if (!isCount(v.memoryBytes)) return 'capabilities.memoryBytes must be a non-negative integer';
  if (!isFiniteNumber(v.score) || v.score < 0) return 'capabilities.score must be a non-negative number';
  return undefined;
}

function loadProblem(v: unknown): string | undefined {
  if (!isRecord(v)) return 'load must be an object';
  for (const k of ['cpu', 'freeMemoryBytes', 'queueLength', 'latencyMs']) {
    if (!isFiniteNumber(v[k]) || (v[k] as number) < 0) return `load.${k} must be a non-negative number`;
  }
  return undefined;
}

const checks: Record<RuntimeMessageType, Check> = {
  join: (m) =>
    !isString(m.name, 256)
      ? 'name must be a string'
      : (capabilitiesProblem(m.capabilities) ??
        (isShaList(m.blobs) ? undefined : 'blobs must be SHA-256 hex strings')),
  joined: (m) =>
    !isString(m.workerId, 256)
      ? 'workerId must be a string'
      : !isCount(m.heartbeatPort) || m.heartbeatPort > 65535
        ? 'heartbeatPort must be a port number'
        : isCount(m.heartbeatIntervalMs)
          ? undefined
          : 'heartbeatIntervalMs must be a count',
  'blob.status': (m) => (isShaList(m.blobs) ? undefined : 'blobs must be SHA-256 hex strings'),
  'blob.status.result': (m) =>
    !isShaList(m.missing)
      ? 'missing must be SHA-256 hex strings'
      : Array.isArray(m.partial) &&
          m.partial.every((p) => isRecord(p) && isSha(p.sha256) && isCount(p.receivedBytes))
        ? undefined
        : 'partial must list {sha256, receivedBytes}',
  'blob.chunk': (m) =>
    !isSha(m.sha256)
      ? 'sha256 must be a SHA-256 hex string'
      : !isCount(m.offset) || !isCount(m.rawBytes) || !isCount(m.totalBytes)
        ? 'offset, rawBytes and totalBytes must be counts'
        : (m.offset as number) + (m.rawBytes as number) > (m.totalBytes as number)
          ? 'chunk extends past totalBytes'
          : m.compression !== 'none' && m.compression !== 'deflate'
            ? 'compression must be none or deflate'
            : typeof m.final === 'boolean'
              ? undefined
              : 'final must be a boolean',
  'blob.delta': (m) =>
    !isSha(m.sha256) || !isSha(m.base)
      ? 'sha256 and base must be SHA-256 hex strings'
      : !isCount(m.totalBytes)
        ? 'totalBytes must be a count'
        : DELTA_COMPRESSIONS.includes(m.compression as DeltaCompression)
          ? undefined
          : `compression must be one of ${DELTA_COMPRESSIONS.join(', ')}`,
  'blob.ack': (m) =>
    isSha(m.sha256) && isCount(m.receivedBytes) && typeof m.complete === 'boolean'
      ? undefined
      : 'blob.ack needs sha256, receivedBytes, complete',
  'stage.load': (m) =>
    !isString(m.key) || !isSha(m.topology) || !isShaList(m.weights)
      ? 'stage.load needs key, topology and weights hashes'
      : isNameList(m.inputs) && isNameList(m.outputs)
        ? undefined
        : 'inputs and outputs must be tensor names',
  'stage.loaded': (m) =>
    isString(m.key) && isFiniteNumber(m.warmupMs) ? undefined : 'stage.loaded needs key and warmupMs',
  'stage.unload': (m) => (isString(m.key) ? undefined : 'stage.unload needs key'),
  ok: () => undefined,
  infer: (m) =>
    isString(m.key) && isString(m.requestId, 256) && Array.isArray(m.tensors)
      ? undefined
      : 'infer needs key, requestId and tensors',
  'infer.result': (m) =>
    Array.isArray(m.tensors) && isFiniteNumber(m.computeMs) && isFiniteNumber(m.queueMs)
      ? undefined
      : 'infer.result needs tensors, computeMs and queueMs',
  ping: () => undefined,
  pong: (m) => loadProblem(m.load),
  drain: (m) =>
    typeof m.reason === 'string' && m.reason.length <= 1024 ? undefined : 'drain needs a reason',
};

/**
 * Validates an untrusted header as a runtime message, optionally of one expected `type`.
 * Throws `DINFER_ERR_PROTOCOL` naming the problem. Tensor descriptors are validated later by
 * `decodeTensors`.
 */
export function parseRuntimeMessage<T extends RuntimeMessageType>(
  header: unknown,
  expected?: T,
): Extract<RuntimeMessage, { type: T }> {
  if (!isRecord(header) || typeof header.type !== 'string') {
    throw new DinferError(DinferErrorCode.PROTOCOL, 'runtime message must be an object with a string type');
  }
  const type = header.type;
  if (expected !== undefined && type !== expected) {
    throw new DinferError(DinferErrorCode.PROTOCOL, `expected a ${expected} message, got ${type}`);
  }
  const check = Object.hasOwn(checks, type) ? checks[type as RuntimeMessageType] : undefined;
  if (!check)
    throw new DinferError(DinferErrorCode.PROTOCOL, `unknown runtime message type ${JSON.stringify(type)}`);
  const problem = check(header);
  if (problem) throw new DinferError(DinferErrorCode.PROTOCOL, `invalid ${type} message: ${problem}`);
  return header as unknown as Extract<RuntimeMessage, { type: T }>;
}
