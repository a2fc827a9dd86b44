/**
 * Readiness and degraded mode: the cluster is ready once every stage of every active model
 * has a loaded worker; afterwards a stage with no live replica is degraded (the master runs
 * it) until a worker serves it again.
 *
 * @module
 */
import { DinferError, DinferErrorCode } from '../errors.js';
import type { ServiceHealth } from '../serving/inference-service.js';
import type { CoordinatorContext } from './coordinator-context.js';
import type { DeploymentStage } from './deployment.js';
import type { ModelRegistry } from './model-registry.js';

/** Tracks whether the cluster is ready and which stages run degraded. */
export class Readiness {
  readonly #ctx: CoordinatorContext;
  readonly #registry: ModelRegistry;
  readonly #servedBy: (stage: DeploymentStage) => number;
  readonly #workerCount: () => number;
  readonly #degradedStages = new Set<string>();
  #ready: boolean;
  #waiters: Array<{ resolve: () => void; reject: (error: DinferError) => void }> = [];

  constructor(
    ctx: CoordinatorContext,
    registry: ModelRegistry,
    cluster: {
      /** How many routable workers have `stage` loaded. */
      readonly servedBy: (stage: DeploymentStage) => number;
      /** Workers in the cluster, for logs. */
      readonly workerCount: () => number;
    },
  ) {
    this.#ctx = ctx;
    this.#registry = registry;
    this.#servedBy = cluster.servedBy;
    this.#workerCount = cluster.workerCount;
    this.#ready = ctx.options.startDegraded === true;
  }

  /** True once every stage was served (or from the start with `startDegraded`). */
  get ready(): boolean {
    return this.#ready;
  }

  /** True while some active stage has no worker. */
  get degraded(): boolean {
    return this.#degradedStages.size > 0;
  }

  /** The service health the coordinator reports. */
  health(): ServiceHealth {
    const stopped = this.#ctx.stopped;
    return { live: !stopped, ready: this.#ready && !stopped, degraded: this.degraded };
  }

  /** Re-evaluates readiness and degraded stages after workers, loads or versions changed. */
  update(): void {
    const { log, metrics } = this.#ctx;
    const active = this.#registry.activeDeployments();
    let allServed = active.length > 0;
    for (const deployment of active) {
      if (!deployment.planned) allServed = false;
      for (const stage of deployment.stages) {
        const served = this.#servedBy(stage) > 0;
        if (!served) allServed = false;
        const wasDegraded = this.#degradedStages.has(stage.key);
        if (this.#ready && !served && !wasDegraded) {
          this.#degradedStages.add(stage.key);
          if (deployment.runsLocally(stage.index)) {
            log.warn({ stage: stage.key }, 'no worker serves this stage: the master runs it (degraded mode)');
          } else {
            log.error(
              { stage: stage.key, requiredBytes: stage.requirement.memoryBytes },
              'no worker serves this stage and it does not fit the master: its requests fail with NO_WORKER',
            );
          }
          this.#ctx.emit({ type: 'degraded', model: deployment.name, stage: stage.index, active: true });
        } else if (served && wasDegraded) {
          this.#degradedStages.delete(stage.key);
          log.info({ stage: stage.key }, 'a worker serves this stage again: degraded mode over');
          this.#ctx.emit({ type: 'degraded', model: deployment.name, stage: stage.index, active: false });
        }
      }
    }
    metrics.set('dinfer_degraded', {}, this.#degradedStages.size > 0 ? 1 : 0);
    if (allServed && !this.#ready) {
      this.#ready = true;
      log.info({ workers: this.#workerCount() }, 'cluster ready');
      this.#ctx.emit({ type: 'ready' });
    }
    if (this.#ready) {
      const waiters = this.#waiters;
      this.#waiters = [];
      for (const waiter of waiters) waiter.resolve();
    }
  }

  /**
   * Resolves once ready. Rejects with `TIMEOUT` after `timeoutMs` (the message comes from
   * `describe()`, `ABORTED` when `signal` aborts, or the error given to {@link fail}.
   */
  wait(options: {
    timeoutMs?: number | undefined;
    signal?: AbortSignal | undefined;
    describe: () => string;
  }): Promise<void> {
    if (this.#ready) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const timer =
        options.timeoutMs === undefined
          ? undefined
          : setTimeout(
              () =>
                reject(
                  new DinferError(
                    DinferErrorCode.TIMEOUT,
                    `cluster not ready after ${options.timeoutMs} ms: ${options.describe()}`,
                  ),
                ),
              options.timeoutMs,
            );
      this.#waiters.push({
        resolve: () => {
          if (timer) clearTimeout(timer);
          resolve();
        },
        reject: (error) => {
          if (timer) clearTimeout(timer);
          reject(error);
        },
      });
      options.signal?.addEventListener(
        'abort',
        () => reject(new DinferError(DinferErrorCode.ABORTED, 'the request was aborted')),
        { once: true },
      );
    });
  }

  /**
   * Fails every pending {@link wait} with `error` while the cluster is not ready yet (a
   * scheduler whose placement breaks its contract would otherwise only show as a timeout).
   */
  fail(error: DinferError): void {
    if (this.#ready) return;
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const waiter of waiters) waiter.reject(error);
  }
}
