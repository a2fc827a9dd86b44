/**
 * The master's handle on one connected worker: its connection, what it declared, what it
 * holds, its load and its circuit breaker.
 *
 * @module
 */
import {
  type CircuitBreakerPolicy,
  CircuitState,
  ConsecutiveBreaker,
  circuitBreaker,
  handleWhen,
} from 'cockatiel';
import type { Connection } from '../connection/connection.js';
import { DinferErrorCode, isDinferError } from '../errors.js';
import type { StageKey } from '../protocol/messages.js';
import type { WorkerCapabilities, WorkerLoad, WorkerView } from '../scheduler.js';

/** Weight of the newest call in the running mean of call times. */
const CALL_MS_WEIGHT = 0.2;

/** Lifecycle of a worker as the master sees it. */
export type RemoteWorkerState = 'ready' | 'draining' | 'gone';

/** Circuit breaker settings for each worker. */
export interface BreakerOptions {
  /** Consecutive failures that open the breaker. Default 3. */
  readonly consecutiveFailures?: number;
  /** Time the breaker stays open before a probe request is let through, in ms. Default 5000. */
  readonly halfOpenAfterMs?: number;
}

/** Remote error codes that say the worker itself is unwell (they count against its breaker). */
const WORKER_FAULT_CODES: ReadonlySet<string> = new Set([
  DinferErrorCode.TRANSPORT_CLOSED,
  DinferErrorCode.TIMEOUT,
  DinferErrorCode.INTERNAL,
  DinferErrorCode.PROTOCOL,
]);

/** True when `error` says the worker (or the link to it) failed, rather than the request. */
export function isWorkerFault(error: unknown): boolean {
  if (!isDinferError(error)) return true;
  if (error.code === DinferErrorCode.REMOTE) {
    const remote = error.details.remoteCode;
    return typeof remote !== 'string' || WORKER_FAULT_CODES.has(remote) || !remote.startsWith('DINFER_ERR_');
  }
  return WORKER_FAULT_CODES.has(error.code);
}

/** A connected worker, from the master's side. */
export class RemoteWorker {
  readonly id: string;
  readonly name: string;
  readonly connection: Connection;
  readonly capabilities: WorkerCapabilities;
  readonly joinedAt = Date.now();
  state: RemoteWorkerState = 'ready';
  load: WorkerLoad | undefined;
  lastHeartbeatAt: number | undefined;
  inflight = 0;
  /** Consecutive failed health pings. */
  missedPings = 0;
  /** Blobs the worker holds completely (announced at join or shipped since). */
  readonly blobs: Set<string>;
  /** Stages loaded and warmed up on the worker. */
  readonly loaded = new Set<StageKey>();
  /** Stage loads in progress. */
  readonly loading = new Map<StageKey, Promise<void>>();
  readonly breaker: CircuitBreakerPolicy;
  /** Running mean of the master's call time per stage, in ms. */
  readonly #callMs = new Map<StageKey, number>();
  /** Completed and failed stage calls, for status. */
  completed = 0;
  failed = 0;

  constructor(init: {
    id: string;
    name: string;
    connection: Connection;
    capabilities: WorkerCapabilities;
    blobs: readonly string[];
    breaker?: BreakerOptions | undefined;
  }) {
    this.id = init.id;
    this.name = init.name;
    this.connection = init.connection;
    this.capabilities = init.capabilities;
    this.blobs = new Set(init.blobs);
    this.breaker = circuitBreaker(handleWhen(isWorkerFault), {
      halfOpenAfter: init.breaker?.halfOpenAfterMs ?? 5000,
      breaker: new ConsecutiveBreaker(init.breaker?.consecutiveFailures ?? 3),
    });
  }

  /** True when requests may be routed here (ready, connected, breaker not open). */
  get routable(): boolean {
    return (
      this.state === 'ready' &&
      this.connection.isOpen &&
      this.breaker.state !== CircuitState.Open &&
      this.breaker.state !== CircuitState.Isolated
    );
  }

  /** The breaker state as a word, for status and metrics. */
  get breakerState(): 'closed' | 'open' | 'half-open' {
    switch (this.breaker.state) {
      case CircuitState.Closed:
        return 'closed';
      case CircuitState.HalfOpen:
        return 'half-open';
      default:
        return 'open';
    }
  }

  /** Records the time of a stage call the master made to this worker (a running mean). */
  recordCall(stage: StageKey, ms: number): void {
    const previous = this.#callMs.get(stage);
    this.#callMs.set(stage, previous === undefined ? ms : previous + CALL_MS_WEIGHT * (ms - previous));
  }

  /** The scheduler's view of this worker; with `stage`, including its recent call time for that stage. */
  view(stage?: StageKey): WorkerView {
    const callMs = stage === undefined ? undefined : this.#callMs.get(stage);
    return {
      id: this.id,
      name: this.name,
      ...(callMs === undefined ? {} : { callMs }),
      capabilities: this.capabilities,
      load: this.load,
      inflight: this.inflight,
      healthy: this.routable,
    };
  }
}
