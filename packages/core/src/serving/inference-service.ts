/**
 * What the HTTP layer (or any embedding app) needs from a master: the models it serves and
 * a way to run one request. The coordinator implements it over a cluster; a local service
 * runs a model in-process (used for degraded mode and tests).
 *
 * @module
 */
import type { TensorSpec } from '../model/types.js';
import type { TensorData } from '../tensor/types.js';

/** A model the service can run, with its signature. */
export interface ServedModel {
  readonly name: string;
  /** The version new requests run on. */
  readonly version: string;
  /** Model inputs in order; the batch dimension is `null`. */
  readonly inputs: readonly TensorSpec[];
  /** Model outputs in order. */
  readonly outputs: readonly TensorSpec[];
  /** Optional class labels for the first output (index -> label). */
  readonly labels?: readonly string[] | undefined;
  /** Every version that can be asked for explicitly (the active one included). */
  readonly versions?: readonly string[] | undefined;
}

/** Per-request options of {@link InferenceService.infer}. */
export interface InferOptions {
  /** Aborts the request (the caller went away). */
  readonly signal?: AbortSignal | undefined;
  /** Id that follows the request through every stage and log line. */
  readonly requestId?: string | undefined;
  /** Absolute time (ms since epoch) after which the request is abandoned with `DINFER_ERR_TIMEOUT`. */
  readonly deadline?: number | undefined;
  /** Run on this model version instead of the active one. */
  readonly version?: string | undefined;
}

/** Where one stage of a request ran and how long it took. */
export interface StageTrace {
  readonly stage: number;
  /** Worker id, or `master` when the master ran the stage itself (degraded mode). */
  readonly worker: string;
  /** Time of the stage call as seen by the master (compute + transfer + queue), in ms. */
  readonly ms: number;
  /** Retries this stage needed. */
  readonly retries: number;
}

/** The answer to one request. */
export interface InferResult {
  readonly model: string;
  /** The version that computed this answer. */
  readonly version: string;
  /** Model outputs, in the order of {@link ServedModel.outputs}; batch dimension first. */
  readonly outputs: readonly TensorData[];
  readonly nodes: readonly StageTrace[];
  /** True when at least one stage ran on the master because no worker could serve it. */
  readonly degraded: boolean;
  /** Wall time of the request inside the service, in ms. */
  readonly processingTimeMs: number;
  /** True when the answer came from a result cache (see `cachingService`) rather than a computation. */
  readonly cached?: boolean | undefined;
  /** For an ensemble (see `ensembleService`): the members that answered, with their versions and traces. */
  readonly members?: readonly MemberResult[] | undefined;
  /** For an ensemble answered by a quorum: the members that failed. */
  readonly missing?: readonly string[] | undefined;
}

/** How one member of an ensemble answered. */
export interface MemberResult {
  readonly model: string;
  readonly version: string;
  readonly nodes: readonly StageTrace[];
  readonly degraded: boolean;
  readonly cached?: boolean | undefined;
}

/** Readiness of a service, for `/v2/health/*`. */
export interface ServiceHealth {
  readonly live: boolean;
  /** Every stage of every model can be served (by a worker, or by the master when degraded). */
  readonly ready: boolean;
  readonly degraded: boolean;
}

/** A master as seen by its HTTP layer. */
export interface InferenceService {
  /** Models currently served. */
  models(): readonly ServedModel[];
  /**
   * Runs one request. `inputs` follow the model's input order and carry a batch dimension.
   * Rejects with a `DinferError`: `UNKNOWN_MODEL`, `TENSOR_INVALID` (shape/dtype mismatch),
   * `OVERLOADED`, `TIMEOUT`, `NO_WORKER`, `ABORTED`...
   */
  infer(model: string, inputs: readonly TensorData[], options?: InferOptions): Promise<InferResult>;
  health(): ServiceHealth;
}
