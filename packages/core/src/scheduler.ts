/**
 * The Scheduler extension point: which workers hold which stages (placement), and which
 * replica of a stage serves the next request (routing).
 *
 * Schedulers are pure decision makers: they never talk to workers. The coordinator feeds
 * them a snapshot of the cluster (capabilities announced at join, load from heartbeats, its
 * own in-flight counts) and acts on their answers. A third-party scheduler implements this
 * interface and proves itself with `schedulerSuite` from `@dinfer/core/testing`.
 *
 * @module
 */
import type { BackendName } from './backend-info.js';

/** Brand that marks an object as a dinfer Scheduler (shared across duplicate installs). */
export const schedulerSymbol: unique symbol = Symbol.for('@dinfer/scheduler') as never;

/** What a worker declares about itself when it joins. */
export interface WorkerCapabilities {
  /** The TF.js backend the worker runs (`tensorflow`, `wasm`, `cpu`, or a custom name). */
  readonly backend: BackendName | (string & {});
  /** Logical CPU cores available to the worker. */
  readonly cores: number;
  /** Memory the worker may use for weights and activations, in bytes. */
  readonly memoryBytes: number;
  /** Measured speed: higher is faster (e.g. GFLOP/s of a short benchmark). Comparable across workers. */
  readonly score: number;
}

/** A worker's recent load, reported by heartbeats. */
export interface WorkerLoad {
  /** CPU utilisation in [0, 1]. */
  readonly cpu: number;
  /** Free memory in bytes. */
  readonly freeMemoryBytes: number;
  /** Requests waiting in the worker's queue. */
  readonly queueLength: number;
  /** Recent mean stage latency in milliseconds. */
  readonly latencyMs: number;
}

/** The coordinator's view of one worker, handed to schedulers. */
export interface WorkerView {
  /** The id the master gave the worker when it joined (unique within the cluster). */
  readonly id: string;
  /** The name the worker announced (for logs and schedulers that pin stages by name). */
  readonly name: string;
  readonly capabilities: WorkerCapabilities;
  /** Last reported load, if any heartbeat arrived yet. */
  readonly load?: WorkerLoad | undefined;
  /** Requests the coordinator has in flight on this worker right now. */
  readonly inflight: number;
  /**
   * The master's recent mean time of a call of the routed stage to this worker, in ms: queue,
   * compute and both transfers, so a slow link shows here even when the worker's own compute
   * is fast. Set in `route` requests once the worker has answered a call of that stage;
   * undefined in placement requests.
   */
  readonly callMs?: number | undefined;
  /** False while the worker's circuit breaker is open or it missed heartbeats. */
  readonly healthy: boolean;
}

/** What placing a stage requires. */
export interface StageRequirement {
  readonly index: number;
  /** Bytes of weights the stage holds. */
  readonly weightBytes: number;
  /** Memory the stage needs on a worker: weights plus working activations, in bytes. */
  readonly memoryBytes: number;
  /** Estimated time of one example through the stage, in milliseconds. */
  readonly estimatedMs: number;
}

/** Which workers hold each stage. `stages[i]` lists the worker ids holding stage `i`. */
export interface Placement {
  readonly stages: readonly (readonly string[])[];
}

/** Input to {@link Scheduler.place}. */
export interface PlacementRequest {
  readonly stages: readonly StageRequirement[];
  readonly workers: readonly WorkerView[];
  /** The placement in force, if any: schedulers should keep stable what still fits. */
  readonly current?: Placement | undefined;
}

/**
 * The scheduler extension point. Create implementations through factories
 * (`roundRobinScheduler()`); check foreign objects with {@link isScheduler}.
 */
export interface Scheduler {
  readonly [schedulerSymbol]: true;
  /** Short name for logs and metrics. */
  readonly name: string;
  /**
   * Assigns every stage to one or more workers: `stages` has exactly one entry per requested
   * stage, in order, and every worker id in it comes from `request.workers` (at most once per
   * stage). A stage that fits on no worker gets an empty list (the coordinator then serves it
   * in degraded mode or reports it); schedulers never throw for that. The coordinator checks
   * the answer and fails with `DINFER_ERR_SCHEDULER_INVALID`, naming the scheduler, when it
   * breaks these rules.
   */
  place(request: PlacementRequest): Placement;
  /**
   * Picks the replica that serves the next request for `stage`, from the healthy replicas
   * given (never empty). Returns the chosen replica's `id`; an id that is not one of them fails
   * the request with `DINFER_ERR_SCHEDULER_INVALID`.
   */
  route(stage: number, replicas: readonly WorkerView[]): string;
}

/** True when `value` is a dinfer {@link Scheduler}, even from another copy of this package. */
export function isScheduler(value: unknown): value is Scheduler {
  return (
    typeof value === 'object' &&
    value !== null &&
    (value as Record<symbol, unknown>)[schedulerSymbol] === true
  );
}
