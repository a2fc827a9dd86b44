/**
 * Typed errors shared by every dinfer package.
 *
 * @module
 */

/** Every error code a dinfer package raises, by key. Codes are stable public contract. */
export const DinferErrorCode = {
  /** A caller passed an argument that can never be valid. */
  INVALID_ARGUMENT: 'DINFER_ERR_INVALID_ARGUMENT',
  /** A TF.js backend was requested but could not be loaded or initialised. */
  BACKEND_UNAVAILABLE: 'DINFER_ERR_BACKEND_UNAVAILABLE',
  /** A model file (model.json, a weight shard, a manifest) does not exist. */
  MODEL_NOT_FOUND: 'DINFER_ERR_MODEL_NOT_FOUND',
  /** A model file exists but cannot be parsed or is inconsistent (e.g. wrong weight sizes). */
  MODEL_CORRUPT: 'DINFER_ERR_MODEL_CORRUPT',
  /** The artifacts are valid TF.js but not a format dinfer supports (e.g. a graph model). */
  MODEL_UNSUPPORTED: 'DINFER_ERR_MODEL_UNSUPPORTED',
  /** Reading or writing model artifacts failed for an I/O reason (network, permissions). */
  MODEL_IO: 'DINFER_ERR_MODEL_IO',
  /** Cut indices are out of range, not increasing, or leave a stage empty. */
  PARTITION_INVALID_CUT: 'DINFER_ERR_PARTITION_INVALID_CUT',
  /** The model graph cannot be partitioned (e.g. an unsupported graph construct). */
  PARTITION_UNSUPPORTED: 'DINFER_ERR_PARTITION_UNSUPPORTED',
  /** No set of cuts satisfies the planner's constraints (e.g. the memory limit). */
  PLAN_INFEASIBLE: 'DINFER_ERR_PLAN_INFEASIBLE',
  /** A frame or message could not be decoded, or breaks the protocol. */
  PROTOCOL: 'DINFER_ERR_PROTOCOL',
  /** The peer speaks an incompatible protocol version. */
  PROTOCOL_VERSION: 'DINFER_ERR_PROTOCOL_VERSION',
  /** A frame exceeds the configured maximum size. */
  FRAME_TOO_LARGE: 'DINFER_ERR_FRAME_TOO_LARGE',
  /** Authentication with the cluster token (or the HTTP admin credential) failed or was missing. */
  AUTH_FAILED: 'DINFER_ERR_AUTH_FAILED',
  /**
   * A request was refused by policy whoever sends it: an operation switched off, a cross-site
   * request, a Host header the server does not serve.
   */
  FORBIDDEN: 'DINFER_ERR_FORBIDDEN',
  /** The connection closed (locally or by the peer) while an operation was pending. */
  TRANSPORT_CLOSED: 'DINFER_ERR_TRANSPORT_CLOSED',
  /** Dialing or listening failed. */
  TRANSPORT_CONNECT: 'DINFER_ERR_TRANSPORT_CONNECT',
  /** An operation did not complete within its timeout. */
  TIMEOUT: 'DINFER_ERR_TIMEOUT',
  /** An operation was aborted through its AbortSignal. */
  ABORTED: 'DINFER_ERR_ABORTED',
  /** The peer answered a request with an error. */
  REMOTE: 'DINFER_ERR_REMOTE',
  /** A tensor's dtype, shape or byte length is invalid. */
  TENSOR_INVALID: 'DINFER_ERR_TENSOR_INVALID',
  /** No worker is available to serve a stage. */
  NO_WORKER: 'DINFER_ERR_NO_WORKER',
  /** A queue is full; the caller should retry later. */
  OVERLOADED: 'DINFER_ERR_OVERLOADED',
  /** A client sent more requests than its rate limit allows; it should retry later. */
  RATE_LIMITED: 'DINFER_ERR_RATE_LIMITED',
  /** A cache cannot take the bytes offered without evicting what is in use (pinned). */
  CACHE_FULL: 'DINFER_ERR_CACHE_FULL',
  /** A bytes' hash does not match the expected SHA-256. */
  HASH_MISMATCH: 'DINFER_ERR_HASH_MISMATCH',
  /** A new model version could not be rolled out; the previous version keeps serving. */
  ROLLOUT_FAILED: 'DINFER_ERR_ROLLOUT_FAILED',
  /** A scheduler answered `place` or `route` with something that breaks its contract. */
  SCHEDULER_INVALID: 'DINFER_ERR_SCHEDULER_INVALID',
  /** The requested model or version is not known. */
  UNKNOWN_MODEL: 'DINFER_ERR_UNKNOWN_MODEL',
  /** A configuration value is invalid. */
  CONFIG_INVALID: 'DINFER_ERR_CONFIG_INVALID',
  /** The component is not ready (not started, or shutting down). */
  NOT_READY: 'DINFER_ERR_NOT_READY',
  /** An invariant was broken; this is a bug in dinfer. */
  INTERNAL: 'DINFER_ERR_INTERNAL',
} as const;

/** Union of every dinfer error code string. */
export type DinferErrorCode = (typeof DinferErrorCode)[keyof typeof DinferErrorCode];

const kDinferError = Symbol.for('@dinfer/error');

/** Options accepted by {@link DinferError}. */
export interface DinferErrorOptions {
  /** The underlying error, kept as ES2022 `cause`. */
  cause?: unknown;
  /** Structured context (a path, a cut index, a peer address) for logs and messages. */
  details?: Record<string, unknown>;
}

/**
 * The one error class dinfer throws. `code` identifies the failure; `details` carries
 * structured context. `instanceof` works across duplicate installs of `@dinfer/core`.
 */
export class DinferError extends Error {
  /** Stable machine-readable code. */
  readonly code: DinferErrorCode;
  /** Structured context for the failure. */
  readonly details: Record<string, unknown>;

  constructor(code: DinferErrorCode, message: string, options: DinferErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'DinferError';
    this.code = code;
    this.details = options.details ?? {};
    Object.defineProperty(this, kDinferError, { value: true });
  }

  static override [Symbol.hasInstance](value: unknown): boolean {
    return typeof value === 'object' && value !== null && kDinferError in value;
  }
}

/** True when `value` is a {@link DinferError}, optionally with the given code. */
export function isDinferError(value: unknown, code?: DinferErrorCode): value is DinferError {
  return value instanceof DinferError && (code === undefined || value.code === code);
}
