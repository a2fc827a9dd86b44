/**
 * Placement and shipping: asks the scheduler where every stage of every placed version
 * belongs, ships and loads stages on the workers chosen, and unloads what no placement wants.
 * Rebalances run one at a time; requests for one while another runs coalesce.
 *
 * @module
 */

import type { DinferError } from '../errors.js';
import { placeChecked } from '../place/check-scheduler.js';
import { parseMessage } from '../protocol/messages.js';
import type { Placement, WorkerView } from '../scheduler.js';
import { deltaBaseLookup, shipStage } from '../ship/stage-shipper.js';
import { type CoordinatorContext, errorMessage, reportPlanned } from './coordinator-context.js';
import type { Deployment, DeploymentStage } from './deployment.js';
import type { Membership } from './membership.js';
import type { ModelRegistry, VersionEntry } from './model-registry.js';
import type { Readiness } from './readiness.js';
import type { RemoteWorker } from './remote-worker.js';

/** Decides and carries out which workers hold which stages. */
export class StagePlacer {
  readonly #ctx: CoordinatorContext;
  readonly #registry: ModelRegistry;
  readonly #membership: Membership;
  #readiness: Readiness | undefined;
  /** Placement per version, keyed `<model>@<version>`. */
  readonly #placements = new Map<string, Placement>();
  #minWorkers: number | undefined;
  #allowed = false;
  #rebalancing: Promise<void> = Promise.resolve();
  #rebalanceQueued = false;

  constructor(ctx: CoordinatorContext, registry: ModelRegistry, membership: Membership) {
    this.#ctx = ctx;
    this.#registry = registry;
    this.#membership = membership;
  }

  /** Connects the readiness tracker updated after every load and rebalance. */
  attach(readiness: Readiness): void {
    this.#readiness = readiness;
  }

  /** Workers to wait for before the first placement. */
  get minWorkers(): number | undefined {
    return this.#minWorkers;
  }

  /** True once enough workers joined for placement to start. */
  get allowed(): boolean {
    return this.#allowed;
  }

  /** Sets how many workers the first placement waits for, and starts it if they are there. */
  setMinWorkers(count: number): void {
    this.#minWorkers = count;
    this.maybeAllow();
  }

  /** Starts placing once `minWorkers` workers have joined. */
  maybeAllow(): void {
    if (this.#allowed || this.#minWorkers === undefined) return;
    if (this.#membership.workers.size >= this.#minWorkers) {
      this.#allowed = true;
      void this.requestRebalance();
    }
  }

  /** Forgets the placement of a version (unloaded). */
  forget(model: string, version: string): void {
    this.#placements.delete(`${model}@${version}`);
  }

  /** Routable workers that have `stage` loaded. */
  replicas(stage: DeploymentStage): RemoteWorker[] {
    const out: RemoteWorker[] = [];
    for (const worker of this.#membership.workers.values()) {
      if (worker.loaded.has(stage.key) && worker.routable) out.push(worker);
    }
    return out;
  }

  /** Runs a rebalance after the one in progress (coalescing requests made meanwhile). */
  requestRebalance(): Promise<void> {
    if (this.#rebalanceQueued) return this.#rebalancing;
    this.#rebalanceQueued = true;
    this.#rebalancing = this.#rebalancing.then(async () => {
      this.#rebalanceQueued = false;
      if (this.#ctx.stopped) return;
      try {
        await this.#rebalance();
      } catch (error) {
        this.#ctx.log.error({ err: errorMessage(error) }, 'rebalance failed');
      }
    });
    return this.#rebalancing;
  }

  async #rebalance(): Promise<void> {
    if (!this.#allowed) return;
    const { log } = this.#ctx;
    const live = this.#membership.live();
    const wanted = new Set<string>();
    let failures = 0;
    for (const entry of this.#registry.placedVersions()) {
      const { deployment } = entry;
      const placementKey = `${deployment.name}@${deployment.version}`;
      // What each worker has left once the other versions' stages it holds are counted, so
      // that a version is never planned or placed into memory another one uses.
      const views = live.map((w) => this.#viewFor(w, deployment));
      if (!deployment.planned) {
        // Cut for the workers that will hold it, so that its stages fit their budgets: wait
        // until as many as placement waited for are live.
        if (live.length === 0 || live.length < (this.#minWorkers ?? 1)) continue;
        try {
          await deployment.plan(views.map((v) => v.capabilities.memoryBytes));
          reportPlanned(this.#ctx, deployment);
        } catch (error) {
          this.#placementFailed(entry, error as DinferError);
          continue;
        }
      }
      let placement: Placement;
      try {
        placement = placeChecked(this.#ctx.scheduler, {
          stages: deployment.stages.map((s) => s.requirement),
          workers: views,
          current: this.#placements.get(placementKey),
        });
      } catch (error) {
        // Keep what this version has; nothing is moved on a placement that breaks the rules.
        for (const stage of deployment.stages) {
          for (const worker of live)
            if (worker.loaded.has(stage.key)) wanted.add(`${worker.id} ${stage.key}`);
        }
        this.#placementFailed(entry, error as DinferError);
        continue;
      }
      const tasks: Promise<void>[] = [];
      const kept: string[][] = placement.stages.map(() => []);
      for (const stage of deployment.stages) {
        for (const id of placement.stages[stage.index] ?? []) {
          const worker = this.#membership.workers.get(id);
          if (!worker) continue;
          wanted.add(`${id} ${stage.key}`);
          tasks.push(
            this.#ensureStage(worker, stage).then(
              () => {
                kept[stage.index]?.push(id);
              },
              (error: unknown) => {
                failures++;
                if (entry.state === 'loading')
                  entry.failures.push(`stage ${stage.index} on ${id}: ${errorMessage(error)}`);
                log.error({ worker: id, stage: stage.key, err: errorMessage(error) }, 'stage load failed');
                this.#ctx.emit({
                  type: 'stage.failed',
                  workerId: id,
                  stage: stage.key,
                  error: errorMessage(error),
                });
              },
            ),
          );
        }
      }
      await Promise.all(tasks);
      this.#placements.set(placementKey, { stages: kept });
    }
    // Drop stages no placement wants (moved, previous versions, unloaded models).
    for (const worker of live) {
      for (const key of [...worker.loaded]) {
        if (wanted.has(`${worker.id} ${key}`)) continue;
        worker.loaded.delete(key);
        worker.connection
          .request({ header: { type: 'stage.unload', key }, attachments: [] }, { timeoutMs: 30_000 })
          .catch(() => {});
      }
    }
    this.#readiness?.update();
    if (
      failures > 0 &&
      !this.#ctx.stopped &&
      [...this.#registry.placedVersions()].some((e) => e.state === 'active')
    ) {
      // A worker rejected a shard or failed to load: try again soon, possibly elsewhere.
      const timer = setTimeout(() => void this.requestRebalance(), 1000);
      (timer as { unref?: () => void }).unref?.();
    }
  }

  /** `worker`'s view, its memory less what the stages it holds of other versions need. */
  #viewFor(worker: RemoteWorker, deployment: Deployment): WorkerView {
    const own = new Set(deployment.stages.map((s) => s.key));
    let held = 0;
    for (const entry of this.#registry.placedVersions()) {
      for (const stage of entry.deployment.stages) {
        if (!own.has(stage.key) && worker.loaded.has(stage.key)) held += stage.requirement.memoryBytes;
      }
    }
    const view = worker.view();
    if (held === 0) return view;
    const memoryBytes = Math.max(0, view.capabilities.memoryBytes - held);
    return { ...view, capabilities: { ...view.capabilities, memoryBytes } };
  }

  /** Reports a version that cannot be placed (its plan or the scheduler failed): logged, an event, and the waiters told. */
  #placementFailed(entry: VersionEntry, error: DinferError): void {
    const { deployment } = entry;
    this.#ctx.log.error(
      { model: deployment.name, version: deployment.version, err: error.message },
      'placement failed',
    );
    this.#ctx.emit({
      type: 'placement.failed',
      model: deployment.name,
      version: deployment.version,
      error: error.message,
    });
    if (entry.state === 'loading') entry.failures.push(error.message);
    this.#readiness?.fail(error);
  }

  #ensureStage(worker: RemoteWorker, stage: DeploymentStage): Promise<void> {
    if (worker.loaded.has(stage.key)) return Promise.resolve();
    const pending = worker.loading.get(stage.key);
    if (pending) return pending;
    const { log, metrics, options } = this.#ctx;
    const started = Date.now();
    const task = (async () => {
      // Delta bases: the same model's other versions (the active one first, then newest first).
      const model = this.#registry.models.get(stage.model);
      const others = [...(model?.versions.values() ?? [])]
        .filter((e) => e.deployment.version !== stage.version)
        .reverse()
        .sort((a, b) => Number(b === model?.active) - Number(a === model?.active))
        .flatMap((e) => e.deployment.stages.map((s) => s.blobs));
      const shipped = await shipStage(worker.connection, stage.blobs, {
        held: worker.blobs,
        baseFor: deltaBaseLookup(others, worker.blobs),
        chunkBytes: options.chunkBytes,
        onProgress: (sentBytes, totalBytes) =>
          this.#ctx.emit({
            type: 'shard.progress',
            workerId: worker.id,
            stage: stage.key,
            sentBytes,
            totalBytes,
          }),
      });
      metrics.increment('dinfer_shard_sent_bytes_total', { model: stage.model }, shipped.wireBytes);
      log.info({ worker: worker.id, stage: stage.key, ...shipped }, 'stage blobs on the worker');
      const reply = await worker.connection.request(
        {
          header: {
            type: 'stage.load',
            key: stage.key,
            topology: stage.blobs.topologySha256,
            weights: stage.blobs.tensors.map((t) => t.sha256),
            inputs: stage.partitionStage.inputs.map((t) => t.name),
            outputs: stage.partitionStage.outputs.map((t) => t.name),
          },
          attachments: [],
        },
        { timeoutMs: 300_000 },
      );
      parseMessage(reply.header, 'stage.loaded');
      worker.loaded.add(stage.key);
      const ms = Date.now() - started;
      log.info({ worker: worker.id, stage: stage.key, ms }, 'stage loaded');
      this.#ctx.emit({ type: 'stage.loaded', workerId: worker.id, stage: stage.key, ms });
      this.#readiness?.update();
    })()
      .catch((error: unknown) => {
        // The worker may have evicted or rejected a blob: ask again next time.
        worker.blobs.delete(stage.blobs.topologySha256);
        for (const tensor of stage.blobs.tensors) worker.blobs.delete(tensor.sha256);
        throw error;
      })
      .finally(() => worker.loading.delete(stage.key));
    worker.loading.set(stage.key, task);
    return task;
  }
}
