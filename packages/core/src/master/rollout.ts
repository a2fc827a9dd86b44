/**
 * Model versions at run time: deploy (first version at startup, hot swap afterwards),
 * activate (rollback), unload, and the warm-up check (warmup-check.ts) every rollout passes
 * before the atomic switch.
 *
 * @module
 */
import { DinferError, DinferErrorCode, isDinferError } from '../errors.js';
import {
  type CoordinatorContext,
  errorMessage,
  localMemoryBytes,
  reportPlanned,
} from './coordinator-context.js';
import { createDeployment, type Deployment, type DeploymentSpec } from './deployment.js';
import type { Membership } from './membership.js';
import type { ModelEntry, ModelRegistry, VersionEntry, VersionState } from './model-registry.js';
import { type PipelineRunner, sleep } from './pipeline-runner.js';
import type { StagePlacer } from './placement.js';
import type { Readiness } from './readiness.js';
import { warmupCheck } from './warmup-check.js';

/** One model version in `Coordinator.versions`. */
export interface VersionStatus {
  readonly model: string;
  readonly version: string;
  readonly state: VersionState;
  /** Why the rollout failed, for `failed` versions. */
  readonly error?: string | undefined;
  /** Requests running on this version now. */
  readonly inflight: number;
  readonly stages: number;
  /** Stages with at least one worker that has them loaded. */
  readonly stagesLoaded: number;
}

/** Options of `Coordinator.deploy` and `Coordinator.activate`. */
export interface RolloutOptions {
  /** Give up on a rollout that is not loaded and warmed up in time. Default 300 000 ms. */
  readonly timeoutMs?: number | undefined;
  readonly signal?: AbortSignal | undefined;
}

/** The parts of the coordinator a rollout drives. */
export interface RolloutParts {
  readonly registry: ModelRegistry;
  readonly membership: Membership;
  readonly placer: StagePlacer;
  readonly readiness: Readiness;
  readonly runner: PipelineRunner;
}

/** Deploys, activates and unloads model versions. */
export class VersionManager {
  readonly #ctx: CoordinatorContext;
  readonly #parts: RolloutParts;

  constructor(ctx: CoordinatorContext, parts: RolloutParts) {
    this.#ctx = ctx;
    this.#parts = parts;
  }

  async deploy(spec: DeploymentSpec, options: RolloutOptions): Promise<Deployment> {
    const { registry, readiness, placer } = this.#parts;
    const version = spec.version ?? '1';
    const existing = registry.models.get(spec.name)?.versions.get(version);
    if (existing && existing.state !== 'failed') {
      throw new DinferError(
        DinferErrorCode.INVALID_ARGUMENT,
        `model "${spec.name}" version "${version}" is already loaded (${existing.state}); activate it or unload it first`,
      );
    }
    const deployment = await createDeployment(
      { ...spec, version },
      { localMemoryBytes: localMemoryBytes(this.#ctx) },
    );
    // Serving on the master before workers come: plan for the master's own budget.
    if (!deployment.planned && this.#ctx.options.startDegraded === true) await this.#planLocally(deployment);
    const model = registry.getOrCreate(spec.name);
    const entry: VersionEntry = { deployment, state: 'loading', error: undefined, inflight: 0, failures: [] };
    model.versions.set(version, entry);
    if (!readiness.ready && !model.active) {
      // Startup: the first version is what readiness waits for.
      entry.state = 'active';
      model.active = entry;
      if (placer.allowed) await placer.requestRebalance();
      return deployment;
    }
    await this.#rollout(model, entry, options);
    return deployment;
  }

  async activate(modelName: string, version: string, options: RolloutOptions): Promise<void> {
    const model = this.#parts.registry.model(modelName);
    const entry = model.versions.get(version);
    if (!entry) {
      throw new DinferError(
        DinferErrorCode.UNKNOWN_MODEL,
        `model "${modelName}" has no version "${version}"; known: ${[...model.versions.keys()].join(', ')}`,
        { details: { model: modelName, version } },
      );
    }
    if (entry.state === 'active') return;
    await this.#rollout(model, entry, options);
  }

  async unload(modelName: string, version?: string): Promise<void> {
    const { registry, placer, readiness } = this.#parts;
    const model = registry.model(modelName);
    if (
      version === undefined ||
      (model.active?.deployment.version === version && model.versions.size === 1)
    ) {
      registry.models.delete(modelName);
      for (const v of model.versions.keys()) placer.forget(modelName, v);
    } else {
      const entry = model.versions.get(version);
      if (!entry) {
        throw new DinferError(
          DinferErrorCode.UNKNOWN_MODEL,
          `model "${modelName}" has no version "${version}"`,
          {
            details: { model: modelName, version },
          },
        );
      }
      if (entry === model.active) {
        throw new DinferError(
          DinferErrorCode.INVALID_ARGUMENT,
          `version "${version}" of "${modelName}" is active: activate another version first, or unload the model`,
        );
      }
      model.versions.delete(version);
      placer.forget(modelName, version);
    }
    this.#ctx.log.info({ model: modelName, version }, 'unloaded');
    await placer.requestRebalance();
    readiness.update();
  }

  versions(modelName?: string): VersionStatus[] {
    const { registry, placer } = this.#parts;
    const out: VersionStatus[] = [];
    for (const model of registry.models.values()) {
      if (modelName !== undefined && model.name !== modelName) continue;
      for (const entry of model.versions.values()) {
        out.push({
          model: model.name,
          version: entry.deployment.version,
          state: entry.state,
          error: entry.error,
          inflight: entry.inflight,
          stages: entry.deployment.stages.length,
          stagesLoaded: entry.deployment.stages.filter((s) => placer.replicas(s).length > 0).length,
        });
      }
    }
    return out;
  }

  /** Ships, loads and warms up `entry` beside the active version, then switches to it. */
  async #rollout(model: ModelEntry, entry: VersionEntry, options: RolloutOptions): Promise<void> {
    const { membership, placer, readiness } = this.#parts;
    const { log } = this.#ctx;
    const { deployment } = entry;
    const label = `${model.name}@${deployment.version}`;
    entry.state = 'loading';
    entry.error = undefined;
    entry.failures = [];
    log.info({ model: model.name, version: deployment.version }, 'rolling out');
    const live = [...membership.workers.values()].some((w) => w.state === 'ready');
    try {
      if (live) {
        const deadline = Date.now() + (options.timeoutMs ?? 300_000);
        for (;;) {
          await placer.requestRebalance(); // plans the version for the workers first, if needed
          if (deployment.planned && deployment.stages.every((s) => placer.replicas(s).length > 0)) break;
          if (entry.failures.length > 0) {
            throw new DinferError(DinferErrorCode.ROLLOUT_FAILED, `${label}: ${entry.failures.join('; ')}`);
          }
          if (Date.now() > deadline) {
            throw new DinferError(DinferErrorCode.ROLLOUT_FAILED, `${label}: not loaded on workers in time`);
          }
          await sleep(50, options.signal);
        }
      } else if (!deployment.planned) {
        await this.#planLocally(deployment);
      }
      await this.#warmupCheck(entry, live);
    } catch (error) {
      entry.state = 'failed';
      entry.error = errorMessage(error);
      log.error({ model: model.name, version: deployment.version, err: entry.error }, 'rollout failed');
      this.#ctx.emit({
        type: 'version.failed',
        model: model.name,
        version: deployment.version,
        error: entry.error,
      });
      void placer.requestRebalance(); // unload what was shipped for it
      throw isDinferError(error, DinferErrorCode.ROLLOUT_FAILED)
        ? error
        : new DinferError(DinferErrorCode.ROLLOUT_FAILED, `${label}: ${entry.error}`, { cause: error });
    }
    const previous = model.active;
    model.active = entry; // the atomic switch: new requests pin this entry from now on
    entry.state = 'active';
    if (previous && previous !== entry) previous.state = 'standby';
    log.info(
      { model: model.name, version: deployment.version, previous: previous?.deployment.version },
      'version active',
    );
    this.#ctx.emit({ type: 'version.active', model: model.name, version: deployment.version });
    readiness.update();
    void placer.requestRebalance(); // the previous version leaves the workers once drained
  }

  /** Plans a deployment for the master alone (there are no workers to plan for). */
  async #planLocally(deployment: Deployment): Promise<void> {
    await deployment.plan([localMemoryBytes(this.#ctx)]);
    reportPlanned(this.#ctx, deployment);
  }

  /** Runs the warm-up check (warmup-check.ts) of a version about to become active. */
  async #warmupCheck(entry: VersionEntry, onWorkers: boolean): Promise<void> {
    const { options } = this.#ctx;
    const kind = await warmupCheck(entry, onWorkers, {
      runner: this.#parts.runner,
      replicas: (stage) => this.#parts.placer.replicas(stage),
      stageTimeoutMs: options.stageTimeoutMs ?? 60_000,
      maxTensorBytes: options.maxTensorBytes ?? 1024 ** 3,
    });
    this.#ctx.log.info(
      { model: entry.deployment.name, version: entry.deployment.version, check: kind },
      'warm-up check passed',
    );
  }
}
