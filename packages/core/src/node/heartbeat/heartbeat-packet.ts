/**
 * The heartbeat datagram: a fixed binary prefix, an optional HMAC-SHA256 tag and a small
 * JSON payload. Layout (all in one UDP datagram of at most {@link HEARTBEAT_MAX_PACKET_BYTES}):
 *
 * ```
 * 0..2   magic 'DHB'
 * 3      format version (1)
 * 4      flags: bit 0 = signed
 * 5..36  HMAC-SHA256(key, bytes 0..4 || payload)     (only when signed)
 * ...    payload: UTF-8 JSON {@link HeartbeatPayload}
 * ```
 *
 * The tag covers the prefix too, so the flags cannot be flipped. The key is the session key
 * of the worker's authenticated connection to the master (`Connection.session.key`), not the
 * cluster token: another holder of the token (another worker) cannot speak for this worker.
 * Decoding never throws: it returns a reason, because a receiver must shrug off whatever
 * arrives on its port.
 *
 * @module
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { DinferError, DinferErrorCode } from '../../errors.js';
import type { HeartbeatKey } from '../../heartbeats.js';
import type { WorkerLoad } from '../../scheduler.js';

/** Largest heartbeat datagram sent or accepted, in bytes. */
export const HEARTBEAT_MAX_PACKET_BYTES = 8192;

/** Version of the heartbeat format (byte 3 of the prefix and `v` of the payload). */
export const HEARTBEAT_VERSION = 1;

/** Longest accepted worker id, in UTF-16 code units. */
export const HEARTBEAT_MAX_WORKER_ID_LENGTH = 256;

const MAGIC = [0x44, 0x48, 0x42] as const; // 'DHB'
const PREFIX_BYTES = 5;
const TAG_BYTES = 32;
const FLAG_SIGNED = 0x01;
const BOOT_PATTERN = /^[0-9A-Za-z_-]{1,64}$/;

/** The JSON body of one heartbeat. */
export interface HeartbeatPayload {
  /** Payload version, {@link HEARTBEAT_VERSION}. */
  readonly v: 1;
  readonly workerId: string;
  /**
   * Random id of the sender's current run (1-64 characters of `[0-9A-Za-z_-]`). A new run
   * restarts `seq`; receivers accept it when its `bootAt` is not older than the run they know.
   */
  readonly boot: string;
  /** When the sender's current run started (ms since epoch). */
  readonly bootAt: number;
  /** Sequence number, strictly increasing within one run. */
  readonly seq: number;
  /** When the packet was sent (ms since epoch, sender clock). */
  readonly sentAt: number;
  readonly load: WorkerLoad;
}

/** Why a datagram was refused. */
export type HeartbeatRejectReason =
  | 'malformed'
  | 'too-large'
  | 'unsigned'
  | 'unknown-worker'
  | 'forged'
  | 'stale'
  | 'replayed'
  | 'capacity';

/** Result of {@link decodeHeartbeat}. */
export type HeartbeatDecodeResult =
  | { readonly ok: true; readonly payload: HeartbeatPayload; readonly signed: boolean }
  | { readonly ok: false; readonly reason: HeartbeatRejectReason; readonly message: string };

const isFiniteNonNegative = (v: unknown): v is number =>
  typeof v === 'number' && Number.isFinite(v) && v >= 0;
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/**
 * Checks a {@link WorkerLoad}: `cpu` in [0, 1], `freeMemoryBytes` and `latencyMs` finite and
 * non-negative, `queueLength` a non-negative integer. Returns an error message or `undefined`.
 */
export function checkWorkerLoad(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'load must be an object';
  const load = value as Record<string, unknown>;
  if (!isFiniteNonNegative(load.cpu) || load.cpu > 1) return 'load.cpu must be a number in [0, 1]';
  if (!isFiniteNonNegative(load.freeMemoryBytes)) return 'load.freeMemoryBytes must be a finite number >= 0';
  if (!isCount(load.queueLength)) return 'load.queueLength must be an integer >= 0';
  if (!isFiniteNonNegative(load.latencyMs)) return 'load.latencyMs must be a finite number >= 0';
  return undefined;
}

/** Validates a parsed payload; returns the typed payload (known fields only) or an error message. */
function checkPayload(value: unknown): HeartbeatPayload | string {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'payload must be an object';
  const p = value as Record<string, unknown>;
  if (p.v !== HEARTBEAT_VERSION) return `payload version ${String(p.v)} is not ${HEARTBEAT_VERSION}`;
  if (typeof p.workerId !== 'string' || p.workerId.length === 0) return 'workerId must be a non-empty string';
  if (p.workerId.length > HEARTBEAT_MAX_WORKER_ID_LENGTH) {
    return `workerId is longer than ${HEARTBEAT_MAX_WORKER_ID_LENGTH} characters`;
  }
  if (typeof p.boot !== 'string' || !BOOT_PATTERN.test(p.boot))
    return 'boot must be 1-64 characters of [0-9A-Za-z_-]';
  if (!isFiniteNonNegative(p.bootAt)) return 'bootAt must be a finite number >= 0';
  if (!isCount(p.seq)) return 'seq must be a safe integer >= 0';
  if (!isFiniteNonNegative(p.sentAt)) return 'sentAt must be a finite number >= 0';
  const loadError = checkWorkerLoad(p.load);
  if (loadError !== undefined) return loadError;
  const load = p.load as WorkerLoad;
  return {
    v: HEARTBEAT_VERSION,
    workerId: p.workerId,
    boot: p.boot,
    bootAt: p.bootAt,
    seq: p.seq,
    sentAt: p.sentAt,
    load: {
      cpu: load.cpu,
      freeMemoryBytes: load.freeMemoryBytes,
      queueLength: load.queueLength,
      latencyMs: load.latencyMs,
    },
  };
}

function tag(key: HeartbeatKey, prefix: Uint8Array, payload: Uint8Array): Buffer {
  return createHmac('sha256', key).update(prefix).update(payload).digest();
}

/**
 * Encodes one heartbeat datagram, signed with `key` when given.
 *
 * @throws DinferError INVALID_ARGUMENT when the payload is invalid or the datagram would
 * exceed {@link HEARTBEAT_MAX_PACKET_BYTES}.
 */
export function encodeHeartbeat(payload: HeartbeatPayload, key?: HeartbeatKey): Buffer {
  const checked = checkPayload(payload);
  if (typeof checked === 'string') {
    throw new DinferError(DinferErrorCode.INVALID_ARGUMENT, `invalid heartbeat: ${checked}`, {
      details: { workerId: payload.workerId },
    });
  }
  const body = Buffer.from(JSON.stringify(checked), 'utf8');
  const signed = key !== undefined;
  const size = PREFIX_BYTES + (signed ? TAG_BYTES : 0) + body.length;
  if (size > HEARTBEAT_MAX_PACKET_BYTES) {
    throw new DinferError(
      DinferErrorCode.INVALID_ARGUMENT,
      `heartbeat of ${size} bytes exceeds the ${HEARTBEAT_MAX_PACKET_BYTES}-byte limit`,
      { details: { workerId: payload.workerId, size } },
    );
  }
  const packet = Buffer.allocUnsafe(size);
  packet[0] = MAGIC[0];
  packet[1] = MAGIC[1];
  packet[2] = MAGIC[2];
  packet[3] = HEARTBEAT_VERSION;
  packet[4] = signed ? FLAG_SIGNED : 0;
  let offset = PREFIX_BYTES;
  if (signed) {
    tag(key, packet.subarray(0, PREFIX_BYTES), body).copy(packet, offset);
    offset += TAG_BYTES;
  }
  body.copy(packet, offset);
  return packet;
}

/**
 * How a receiver authenticates the beats of one worker: the key its packets must be signed
 * with, `'unsigned'` to take them without checking (a cluster run without a credential), or
 * `undefined` for a worker it does not know (refused as `unknown-worker`).
 */
export type HeartbeatKeyLookup = (workerId: string) => HeartbeatKey | 'unsigned' | undefined;

/**
 * Decodes and authenticates one datagram: the payload names its worker, and `keyFor` says
 * how that worker's beats authenticate (see {@link HeartbeatKeyLookup}); a signed packet's
 * tag is compared in constant time. Without `keyFor`, any well-formed packet is accepted
 * unchecked. Freshness and replay are the receiver's business. Never throws.
 */
export function decodeHeartbeat(packet: Uint8Array, keyFor?: HeartbeatKeyLookup): HeartbeatDecodeResult {
  if (packet.length > HEARTBEAT_MAX_PACKET_BYTES) {
    return {
      ok: false,
      reason: 'too-large',
      message: `datagram of ${packet.length} bytes exceeds the limit`,
    };
  }
  if (
    packet.length < PREFIX_BYTES ||
    packet[0] !== MAGIC[0] ||
    packet[1] !== MAGIC[1] ||
    packet[2] !== MAGIC[2]
  ) {
    return { ok: false, reason: 'malformed', message: 'not a dinfer heartbeat (bad magic)' };
  }
  if (packet[3] !== HEARTBEAT_VERSION) {
    return { ok: false, reason: 'malformed', message: `unsupported heartbeat format version ${packet[3]}` };
  }
  const flags = packet[4]!;
  if ((flags & ~FLAG_SIGNED) !== 0)
    return { ok: false, reason: 'malformed', message: `unknown flags ${flags}` };
  const signed = (flags & FLAG_SIGNED) !== 0;
  const bodyStart = PREFIX_BYTES + (signed ? TAG_BYTES : 0);
  if (packet.length <= bodyStart) return { ok: false, reason: 'malformed', message: 'datagram is truncated' };
  const body = packet.subarray(bodyStart);
  // The payload (at most 8 KiB) is read first: it names the worker whose key checks the tag.
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8'));
  } catch {
    return { ok: false, reason: 'malformed', message: 'payload is not valid JSON' };
  }
  const payload = checkPayload(parsed);
  if (typeof payload === 'string') return { ok: false, reason: 'malformed', message: payload };
  if (keyFor !== undefined) {
    const key = keyFor(payload.workerId);
    if (key === undefined) {
      return { ok: false, reason: 'unknown-worker', message: `no worker ${payload.workerId} is watched` };
    }
    if (key !== 'unsigned') {
      if (!signed) return { ok: false, reason: 'unsigned', message: 'heartbeat is not signed' };
      const expected = tag(key, packet.subarray(0, PREFIX_BYTES), body);
      if (!timingSafeEqual(expected, packet.subarray(PREFIX_BYTES, bodyStart))) {
        return { ok: false, reason: 'forged', message: 'heartbeat signature does not verify' };
      }
    }
  }
  return { ok: true, payload, signed };
}
