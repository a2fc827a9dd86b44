/**
 * Options, events and status shapes of the coordinator (the master's runtime).
 *
 * @module
 */
import type { HeartbeatReceiverFactory } from '../heartbeats.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import type { Scheduler } from '../scheduler.js';
import type { TensorEncoding } from '../tensor/types.js';
import type { Transport } from '../transport.js';
import type { BreakerOptions } from './remote-worker.js';

/** Options of {@link createCoordinator}. */
export interface CoordinatorOptions {
  /** The raw transport workers dial; core's upgrader authenticates and runs its channels. */
  readonly transport: Transport;
  /** Cluster address to listen on, e.g. `0.0.0.0:7070` or `127.0.0.1:0`. */
  readonly listen: string;
  /** Default: round-robin. */
  readonly scheduler?: Scheduler | undefined;
  /**
   * Heartbeats from workers beside the connection (workers sign them with their connection's
   * session key). Off unless `receiver` is given: `createHeartbeatReceiver` from
   * `@dinfer/core/node` receives signed UDP datagrams. Without heartbeats the master's health
   * pings (which carry the worker's load) still watch every worker.
   */
  readonly heartbeat?:
    | {
        /** Binds the receiver (e.g. `createHeartbeatReceiver` from `@dinfer/core/node`). */
        readonly receiver?: HeartbeatReceiverFactory | undefined;
        /** Set false to keep the receiver off although one is given. */
        readonly enabled?: boolean | undefined;
        /** UDP port; default: the cluster port. */
        readonly port?: number | undefined;
        readonly host?: string | undefined;
        /** Interval workers are asked to use. Default 2000 ms, at most a third of `timeoutMs`. */
        readonly intervalMs?: number | undefined;
        /** Missing heartbeats for this long remove a worker. Default 30 000 ms. */
        readonly timeoutMs?: number | undefined;
      }
    | undefined;
  /**
   * The cluster token: workers' connections must prove they hold it (core's handshake), and it
   * signs heartbeats. `undefined` runs an open cluster.
   */
  readonly token?: string | undefined;
  /** Health ping interval in ms; 0 disables. Default 5000. */
  readonly pingIntervalMs?: number | undefined;
  /** Consecutive failed pings that remove a worker. Default 3. */
  readonly maxMissedPings?: number | undefined;
  /** Time one stage call may take before it is retried elsewhere, in ms. Default 60 000. */
  readonly stageTimeoutMs?: number | undefined;
  /** Retries of a failed stage call, on other replicas when there are any. */
  readonly retry?:
    | {
        readonly maxAttempts?: number | undefined;
        readonly initialDelayMs?: number | undefined;
        readonly maxDelayMs?: number | undefined;
      }
    | undefined;
  readonly breaker?: BreakerOptions | undefined;
  /** Serve before workers are ready, running stages on the master. Default false. */
  readonly startDegraded?: boolean | undefined;
  /**
   * Memory the master may use to run stages of a model served from artifacts itself (degraded
   * mode, the warm-up reference), in bytes: a stage that needs more is never loaded here, and
   * its requests fail with `NO_WORKER` while no worker serves it. Planned deployments fit this
   * budget when there are no workers to plan for. Default: half the machine's memory, at most
   * what the backend can hold (`defaultMemoryBudget`).
   */
  readonly memoryBytes?: number | undefined;
  /** After workers were lost, run stages without a worker on the master. Default true. */
  readonly degradeOnLoss?: boolean | undefined;
  /** Encoding of activations sent to workers. Default `none`. */
  readonly activationEncoding?: TensorEncoding | undefined;
  /** Deflate activation attachments above this size. Default: never. */
  readonly deflateAboveBytes?: number | undefined;
  /** Largest tensor payload accepted back from a worker. Default 1 GiB. */
  readonly maxTensorBytes?: number | undefined;
  /** Raw bytes per shard chunk. Default 1 MiB. */
  readonly chunkBytes?: number | undefined;
  readonly logger?: Logger | undefined;
  readonly metrics?: Metrics | undefined;
  /** Receives lifecycle and progress events (for progress bars and logs). */
  readonly onEvent?: ((event: CoordinatorEvent) => void) | undefined;
}

/** Something that happened in the cluster. */
export type CoordinatorEvent =
  | { readonly type: 'worker.joined'; readonly workerId: string; readonly name: string }
  | { readonly type: 'worker.left'; readonly workerId: string; readonly reason: string }
  | {
      readonly type: 'shard.progress';
      readonly workerId: string;
      readonly stage: string;
      readonly sentBytes: number;
      readonly totalBytes: number;
    }
  | { readonly type: 'stage.loaded'; readonly workerId: string; readonly stage: string; readonly ms: number }
  | {
      readonly type: 'stage.failed';
      readonly workerId: string;
      readonly stage: string;
      readonly error: string;
    }
  | {
      /** The scheduler's placement broke its contract; nothing was moved. */
      readonly type: 'placement.failed';
      readonly model: string;
      readonly version: string;
      readonly error: string;
    }
  | {
      /** A deployment without given cuts was planned for the workers present. */
      readonly type: 'version.planned';
      readonly model: string;
      readonly version: string;
      readonly cuts: readonly number[];
    }
  | { readonly type: 'ready' }
  | { readonly type: 'version.active'; readonly model: string; readonly version: string }
  | {
      readonly type: 'version.failed';
      readonly model: string;
      readonly version: string;
      readonly error: string;
    }
  | { readonly type: 'degraded'; readonly model: string; readonly stage: number; readonly active: boolean };

/** One worker in {@link ClusterStatus}. */
export interface WorkerStatus {
  readonly id: string;
  readonly name: string;
  readonly address: string;
  readonly backend: string;
  readonly cores: number;
  readonly score: number;
  /** Stage keys loaded on the worker. */
  readonly stages: readonly string[];
  readonly state: string;
  readonly breaker: 'closed' | 'open' | 'half-open';
  /** Milliseconds since the last accepted heartbeat, if any. */
  readonly heartbeatAgeMs: number | null;
  readonly cpu: number | null;
  readonly freeMemoryBytes: number | null;
  readonly queueLength: number | null;
  readonly inflight: number;
  readonly completed: number;
  readonly failed: number;
}

/** One stage in {@link ClusterStatus}. */
export interface StageStatus {
  readonly model: string;
  readonly version: string;
  readonly index: number;
  readonly layers: readonly [number, number];
  readonly weightBytes: number;
  /** Workers with the stage loaded. */
  readonly replicas: readonly string[];
  /** True when no worker can serve it and the master runs it. */
  readonly degraded: boolean;
}

/** A snapshot of the cluster. */
export interface ClusterStatus {
  readonly ready: boolean;
  readonly degraded: boolean;
  readonly workers: readonly WorkerStatus[];
  readonly stages: readonly StageStatus[];
}
