/**
 * The coordinator: the master's runtime. It accepts workers, places stages on them with the
 * scheduler, ships and loads shards, and runs requests through the pipeline of stages,
 * relaying activations. Many requests are in flight at once, so while one stage works on
 * request k the previous stage already works on request k+1.
 *
 * The master keeps each request's last good activation: when a stage call fails or times
 * out it is retried (exponential backoff with jitter) on another replica, and a circuit
 * breaker per worker keeps traffic off a failing worker until a probe succeeds. Workers are
 * removed when their connection closes, their heartbeats stop, or health pings fail; their
 * stages are re-placed. A stage with no live replica runs on the master (degraded mode).
 *
 * @module
 */
import { DinferError, DinferErrorCode } from '../errors.js';
import { silentLogger } from '../logger.js';
import { noopMetrics } from '../metrics.js';
import { roundRobinScheduler } from '../place/round-robin.js';
import type {
  InferenceService,
  InferOptions,
  InferResult,
  ServedModel,
  ServiceHealth,
} from '../serving/inference-service.js';
import { validateModelInputs } from '../serving/validate-inputs.js';
import type { TensorData } from '../tensor/types.js';
import { clusterStatus } from './cluster-status.js';
import { type CoordinatorContext, errorMessage } from './coordinator-context.js';
import type { ClusterStatus, CoordinatorEvent, CoordinatorOptions } from './coordinator-types.js';
import type { Deployment, DeploymentSpec } from './deployment.js';
import { Membership } from './membership.js';
import { ModelRegistry } from './model-registry.js';
import { PipelineRunner } from './pipeline-runner.js';
import { StagePlacer } from './placement.js';
import { Readiness } from './readiness.js';
import { type RolloutOptions, VersionManager, type VersionStatus } from './rollout.js';

export type * from './coordinator-types.js';
export type { VersionState } from './model-registry.js';
export type { RolloutOptions, VersionStatus } from './rollout.js';

/** Options of {@link Coordinator.waitUntilReady}. */
export interface WaitReadyOptions {
  /**
   * Workers to wait for before placing stages (and planning the models without cuts, for
   * those workers). Default: the most stages of any model (1 for a model planned with `'auto'`).
   */
  readonly minWorkers?: number | undefined;
  readonly timeoutMs?: number | undefined;
  readonly signal?: AbortSignal | undefined;
}

/** The master's runtime: an {@link InferenceService} over a cluster of workers. */
export interface Coordinator extends InferenceService {
  /** Listens for workers. Resolves with the bound cluster address and heartbeat port. */
  start(): Promise<{ address: string; heartbeatPort: number }>;
  /**
   * Prepares a model version (partition + shard blobs). Before the cluster is ready, the
   * first version of each model becomes active at once and is placed when workers are there.
   * Afterwards it is a hot swap: the version is shipped, loaded and warmed up on workers while
   * the current one keeps serving, then new requests switch to it atomically; requests in
   * flight finish on the version they started with. A failed rollout leaves the current
   * version serving and rejects with `DINFER_ERR_ROLLOUT_FAILED` saying why.
   */
  deploy(spec: DeploymentSpec, options?: RolloutOptions): Promise<Deployment>;
  /** Makes a known version active again (rollback), with the same hot-swap guarantees. */
  activate(model: string, version: string, options?: RolloutOptions): Promise<void>;
  /** Unloads one version (not the active one while others exist), or the whole model. */
  unload(model: string, version?: string): Promise<void>;
  /** Every version of every model (or of `model`). */
  versions(model?: string): VersionStatus[];
  /** Resolves once every stage of every model has a loaded worker (or startDegraded is set). */
  waitUntilReady(options?: WaitReadyOptions): Promise<void>;
  /** A snapshot of workers and stages. */
  status(): ClusterStatus;
  /** Closes every connection and the listener. */
  stop(): Promise<void>;
}

/** Creates the master's runtime. Call `start()`, `deploy()`, then `waitUntilReady()`. */
export function createCoordinator(options: CoordinatorOptions): Coordinator {
  return new ClusterCoordinator(options);
}

/**
 * The facade over the coordinator's parts: membership (workers joining and leaving), the
 * model registry and its versions, placement and shipping, readiness and degraded mode, and
 * the pipeline runner.
 */
class ClusterCoordinator implements Coordinator {
  readonly #ctx: CoordinatorContext;
  readonly #registry = new ModelRegistry();
  readonly #membership: Membership;
  readonly #placer: StagePlacer;
  readonly #readiness: Readiness;
  readonly #runner: PipelineRunner;
  readonly #versions: VersionManager;
  #stopped = false;

  constructor(options: CoordinatorOptions) {
    const log = options.logger ?? silentLogger;
    const coordinator = this;
    this.#ctx = {
      options,
      log,
      metrics: options.metrics ?? noopMetrics,
      scheduler: options.scheduler ?? roundRobinScheduler(),
      get stopped() {
        return coordinator.#stopped;
      },
      emit(event: CoordinatorEvent) {
        try {
          options.onEvent?.(event);
        } catch (error) {
          log.warn({ err: errorMessage(error) }, 'event handler threw');
        }
      },
    };
    this.#membership = new Membership(this.#ctx, {
      onJoined: () => {
        this.#placer.maybeAllow();
        if (this.#placer.allowed) void this.#placer.requestRebalance();
      },
      onChanged: () => void this.#placer.requestRebalance(),
    });
    this.#placer = new StagePlacer(this.#ctx, this.#registry, this.#membership);
    this.#readiness = new Readiness(this.#ctx, this.#registry, {
      servedBy: (stage) => this.#placer.replicas(stage).length,
      workerCount: () => this.#membership.workers.size,
    });
    this.#placer.attach(this.#readiness);
    this.#runner = new PipelineRunner(this.#ctx, {
      replicas: (stage) => this.#placer.replicas(stage),
      onDegradedRun: () => this.#readiness.update(),
      onRequestDone: (entry) => {
        if (entry.inflight === 0 && entry.state === 'standby') void this.#placer.requestRebalance();
      },
    });
    this.#versions = new VersionManager(this.#ctx, {
      registry: this.#registry,
      membership: this.#membership,
      placer: this.#placer,
      readiness: this.#readiness,
      runner: this.#runner,
    });
  }

  start(): Promise<{ address: string; heartbeatPort: number }> {
    return this.#membership.start();
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    await this.#membership.stop();
  }

  deploy(spec: DeploymentSpec, options: RolloutOptions = {}): Promise<Deployment> {
    return this.#versions.deploy(spec, options);
  }

  activate(model: string, version: string, options: RolloutOptions = {}): Promise<void> {
    return this.#versions.activate(model, version, options);
  }

  unload(model: string, version?: string): Promise<void> {
    return this.#versions.unload(model, version);
  }

  versions(model?: string): VersionStatus[] {
    return this.#versions.versions(model);
  }

  async waitUntilReady(options: WaitReadyOptions = {}): Promise<void> {
    const mostStages = Math.max(1, ...this.#registry.activeDeployments().map((d) => d.expectedStages));
    this.#placer.setMinWorkers(options.minWorkers ?? mostStages);
    await this.#readiness.wait({
      timeoutMs: options.timeoutMs,
      signal: options.signal,
      describe: () => `${this.#membership.workers.size} of ${this.#placer.minWorkers} workers joined`,
    });
  }

  status(): ClusterStatus {
    return clusterStatus(this.#registry, this.#membership, this.#placer, this.#readiness.ready);
  }

  models(): readonly ServedModel[] {
    return this.#registry.served();
  }

  health(): ServiceHealth {
    return this.#readiness.health();
  }

  async infer(
    model: string,
    inputs: readonly TensorData[],
    options: InferOptions = {},
  ): Promise<InferResult> {
    const entry = this.#registry.entryFor(model, options.version);
    if (this.#stopped) throw new DinferError(DinferErrorCode.NOT_READY, 'the server is shutting down');
    if (!this.#readiness.ready) {
      throw new DinferError(DinferErrorCode.NOT_READY, 'the cluster is not ready yet: waiting for workers', {
        details: {
          workers: this.#membership.workers.size,
          minWorkers: this.#placer.minWorkers,
          retryAfterMs: 1000,
        },
      });
    }
    if (!entry.deployment.planned) {
      throw new DinferError(
        DinferErrorCode.NOT_READY,
        `model "${model}" is not planned yet: waiting for the workers it will be planned for`,
        { details: { retryAfterMs: 1000 } },
      );
    }
    validateModelInputs(entry.deployment.served.inputs, inputs);
    return this.#runner.run(entry, inputs, options, false);
  }
}
