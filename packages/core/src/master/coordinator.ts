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
import { randomUUID } from 'node:crypto';
import type { IBackoff } from 'cockatiel';
import { createBackoff } from '../connection/backoff.js';
import type { Connection } from '../connection/connection.js';
import { listenForConnections } from '../connection/listen-for-connections.js';
import { DinferError, DinferErrorCode, isDinferError } from '../errors.js';
import { createHeartbeatReceiver } from '../heartbeat/heartbeat.js';
import { silentLogger } from '../logger.js';
import { noopMetrics } from '../metrics.js';
import { roundRobinScheduler } from '../place/round-robin.js';
import { parseRuntimeMessage } from '../protocol/cluster-messages.js';
import type { Placement, WorkerView } from '../scheduler.js';
import type {
  InferenceService,
  InferOptions,
  InferResult,
  ServedModel,
  ServiceHealth,
  StageTrace,
} from '../serving/inference-service.js';
import { validateModelInputs } from '../serving/validate-inputs.js';
import { deltaBaseLookup, shipStage } from '../ship/stage-shipper.js';
import { decodeTensors, encodeTensors } from '../tensor/codec.js';
import type { TensorData } from '../tensor/types.js';
import type { Envelope, Listener } from '../transport.js';
import type {
  ClusterStatus,
  CoordinatorEvent,
  CoordinatorOptions,
  StageStatus,
} from './coordinator-types.js';
import {
  createDeployment,
  type Deployment,
  type DeploymentSpec,
  type DeploymentStage,
} from './deployment.js';
import { isWorkerFault, RemoteWorker } from './remote-worker.js';

export type * from './coordinator-types.js';

/** Options of {@link Coordinator.waitUntilReady}. */
export interface WaitReadyOptions {
  /** Workers to wait for before placing stages. Default: the most stages of any model. */
  readonly minWorkers?: number | undefined;
  readonly timeoutMs?: number | undefined;
  readonly signal?: AbortSignal | undefined;
}

/**
 * Lifecycle of one model version: `loading` (shipping and warming up), `active` (new
 * requests run on it), `standby` (a previous version, kept for rollback; its shards stay in
 * the workers' disk caches), `failed` (its rollout failed; see `error`).
 */
export type VersionState = 'loading' | 'active' | 'standby' | 'failed';

/** One model version in {@link Coordinator.versions}. */
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

/** Options of {@link Coordinator.deploy} and {@link Coordinator.activate}. */
export interface RolloutOptions {
  /** Give up on a rollout that is not loaded and warmed up in time. Default 300 000 ms. */
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

const RETRYABLE_REMOTE = new Set<string>([
  DinferErrorCode.OVERLOADED,
  DinferErrorCode.NOT_READY,
  DinferErrorCode.TIMEOUT,
  DinferErrorCode.INTERNAL,
  DinferErrorCode.TRANSPORT_CLOSED,
]);

function isRetryable(error: unknown): boolean {
  if (!isDinferError(error)) return true; // e.g. a broken-circuit error from the breaker
  if (error.code === DinferErrorCode.ABORTED) return false;
  if (error.code === DinferErrorCode.REMOTE) {
    const remote = error.details.remoteCode;
    return typeof remote === 'string' && RETRYABLE_REMOTE.has(remote);
  }
  return (
    error.code === DinferErrorCode.TRANSPORT_CLOSED ||
    error.code === DinferErrorCode.TIMEOUT ||
    error.code === DinferErrorCode.NOT_READY ||
    error.code === DinferErrorCode.OVERLOADED ||
    error.code === DinferErrorCode.NO_WORKER
  );
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortError());
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortError());
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function abortError(): DinferError {
  return new DinferError(DinferErrorCode.ABORTED, 'the request was aborted');
}

/** Creates the master's runtime. Call `start()`, `deploy()`, then `waitUntilReady()`. */
export function createCoordinator(options: CoordinatorOptions): Coordinator {
  return new ClusterCoordinator(options);
}

class ClusterCoordinator implements Coordinator {
  readonly #options: CoordinatorOptions;
  readonly #log;
  readonly #metrics;
  readonly #scheduler;
  readonly #workers = new Map<string, RemoteWorker>();
  readonly #models = new Map<string, ModelEntry>();
  /** Placement per version, keyed `<model>@<version>`. */
  readonly #placements = new Map<string, Placement>();
  readonly #degradedStages = new Set<string>();
  #listener: Listener | undefined;
  #heartbeats: Awaited<ReturnType<typeof createHeartbeatReceiver>> | undefined;
  #pingTimer: NodeJS.Timeout | undefined;
  #nextWorker = 1;
  #minWorkers: number | undefined;
  #placementAllowed = false;
  #ready = false;
  #stopped = false;
  #rebalancing: Promise<void> = Promise.resolve();
  #rebalanceQueued = false;
  #readyWaiters: Array<() => void> = [];

  constructor(options: CoordinatorOptions) {
    this.#options = options;
    this.#log = options.logger ?? silentLogger;
    this.#metrics = options.metrics ?? noopMetrics;
    this.#scheduler = options.scheduler ?? roundRobinScheduler();
    if (options.startDegraded) this.#ready = true;
  }

  // ---- lifecycle -------------------------------------------------------------------------

  async start(): Promise<{ address: string; heartbeatPort: number }> {
    this.#listener = await listenForConnections(this.#options.transport, this.#options.listen, {
      token: this.#options.token,
      onConnection: (connection) => this.#accept(connection),
      logger: this.#log,
      metrics: this.#metrics,
    });
    const hb = this.#options.heartbeat;
    let heartbeatPort = 0;
    // Heartbeats go over UDP beside an IP listener (same port number by default); a
    // listener without a host:port address (e.g. in-memory) gets none unless a port is given.
    const listenPort = Number(this.#listener.address.slice(this.#listener.address.lastIndexOf(':') + 1));
    const port = hb?.port ?? (Number.isInteger(listenPort) ? listenPort : undefined);
    if (hb?.enabled !== false && port !== undefined) {
      this.#heartbeats = await createHeartbeatReceiver({
        host: hb?.host ?? hostOf(this.#listener.address),
        port,
        token: this.#options.token,
        timeoutMs: hb?.timeoutMs ?? 30_000,
        logger: this.#log,
        metrics: this.#metrics,
        onBeat: (workerId, load) => {
          const worker = this.#workers.get(workerId);
          if (!worker) return;
          worker.load = load;
          worker.lastHeartbeatAt = Date.now();
          this.#metrics.set('dinfer_worker_cpu_ratio', { worker: workerId }, load.cpu);
          this.#metrics.set('dinfer_worker_free_memory_bytes', { worker: workerId }, load.freeMemoryBytes);
          this.#metrics.set('dinfer_worker_queue_length', { worker: workerId }, load.queueLength);
        },
        onTimeout: (workerId) => {
          const worker = this.#workers.get(workerId);
          if (worker) this.#removeWorker(worker, 'heartbeat timeout');
        },
      });
      heartbeatPort = this.#heartbeats.port;
    }
    const pingEvery = this.#options.pingIntervalMs ?? 5000;
    if (pingEvery > 0) {
      this.#pingTimer = setInterval(() => this.#pingAll(), pingEvery);
      this.#pingTimer.unref();
    }
    this.#log.info({ address: this.#listener.address, heartbeatPort }, 'coordinator listening');
    return { address: this.#listener.address, heartbeatPort };
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#pingTimer) clearInterval(this.#pingTimer);
    await Promise.allSettled([...this.#workers.values()].map((w) => w.connection.close()));
    this.#workers.clear();
    await this.#listener?.close();
    await this.#heartbeats?.stop();
  }

  async deploy(spec: DeploymentSpec, options: RolloutOptions = {}): Promise<Deployment> {
    const version = spec.version ?? '1';
    const existing = this.#models.get(spec.name)?.versions.get(version);
    if (existing && existing.state !== 'failed') {
      throw new DinferError(
        DinferErrorCode.INVALID_ARGUMENT,
        `model "${spec.name}" version "${version}" is already loaded (${existing.state}); activate it or unload it first`,
      );
    }
    const deployment = await createDeployment({ ...spec, version });
    let model = this.#models.get(spec.name);
    if (!model) {
      model = { name: spec.name, active: undefined, versions: new Map() };
      this.#models.set(spec.name, model);
    }
    const entry: VersionEntry = { deployment, state: 'loading', error: undefined, inflight: 0, failures: [] };
    model.versions.set(version, entry);
    if (!this.#ready && !model.active) {
      // Startup: the first version is what readiness waits for.
      entry.state = 'active';
      model.active = entry;
      if (this.#placementAllowed) await this.#requestRebalance();
      return deployment;
    }
    await this.#rollout(model, entry, options);
    return deployment;
  }

  async activate(modelName: string, version: string, options: RolloutOptions = {}): Promise<void> {
    const model = this.#model(modelName);
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
    const model = this.#model(modelName);
    if (
      version === undefined ||
      (model.active?.deployment.version === version && model.versions.size === 1)
    ) {
      this.#models.delete(modelName);
      for (const v of model.versions.keys()) this.#placements.delete(`${modelName}@${v}`);
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
      this.#placements.delete(`${modelName}@${version}`);
    }
    this.#log.info({ model: modelName, version }, 'unloaded');
    await this.#requestRebalance();
    this.#updateReadiness();
  }

  versions(modelName?: string): VersionStatus[] {
    const out: VersionStatus[] = [];
    for (const model of this.#models.values()) {
      if (modelName !== undefined && model.name !== modelName) continue;
      for (const entry of model.versions.values()) {
        out.push({
          model: model.name,
          version: entry.deployment.version,
          state: entry.state,
          error: entry.error,
          inflight: entry.inflight,
          stages: entry.deployment.stages.length,
          stagesLoaded: entry.deployment.stages.filter((s) => this.#replicas(s).length > 0).length,
        });
      }
    }
    return out;
  }

  #model(name: string): ModelEntry {
    const model = this.#models.get(name);
    if (!model) {
      const known = [...this.#models.keys()];
      throw new DinferError(
        DinferErrorCode.UNKNOWN_MODEL,
        `unknown model "${name}"; this server serves ${known.length ? known.map((k) => `"${k}"`).join(', ') : 'no models'}`,
        { details: { model: name, known } },
      );
    }
    return model;
  }

  /** Ships, loads and warms up `entry` beside the active version, then switches to it. */
  async #rollout(model: ModelEntry, entry: VersionEntry, options: RolloutOptions): Promise<void> {
    const { deployment } = entry;
    const label = `${model.name}@${deployment.version}`;
    entry.state = 'loading';
    entry.error = undefined;
    entry.failures = [];
    this.#log.info({ model: model.name, version: deployment.version }, 'rolling out');
    const live = [...this.#workers.values()].some((w) => w.state === 'ready');
    try {
      if (live) {
        const deadline = Date.now() + (options.timeoutMs ?? 300_000);
        for (;;) {
          await this.#requestRebalance();
          if (deployment.stages.every((s) => this.#replicas(s).length > 0)) break;
          if (entry.failures.length > 0) {
            throw new DinferError(DinferErrorCode.ROLLOUT_FAILED, `${label}: ${entry.failures.join('; ')}`);
          }
          if (Date.now() > deadline) {
            throw new DinferError(DinferErrorCode.ROLLOUT_FAILED, `${label}: not loaded on workers in time`);
          }
          await sleep(50, options.signal);
        }
      }
      await this.#warmupCheck(entry, live);
    } catch (error) {
      entry.state = 'failed';
      entry.error = message(error);
      this.#log.error({ model: model.name, version: deployment.version, err: entry.error }, 'rollout failed');
      this.#emit({
        type: 'version.failed',
        model: model.name,
        version: deployment.version,
        error: entry.error,
      });
      void this.#requestRebalance(); // unload what was shipped for it
      throw isDinferError(error, DinferErrorCode.ROLLOUT_FAILED)
        ? error
        : new DinferError(DinferErrorCode.ROLLOUT_FAILED, `${label}: ${entry.error}`, { cause: error });
    }
    const previous = model.active;
    model.active = entry; // the atomic switch: new requests pin this entry from now on
    entry.state = 'active';
    if (previous && previous !== entry) previous.state = 'standby';
    this.#log.info(
      { model: model.name, version: deployment.version, previous: previous?.deployment.version },
      'version active',
    );
    this.#emit({ type: 'version.active', model: model.name, version: deployment.version });
    this.#updateReadiness();
    void this.#requestRebalance(); // the previous version leaves the workers once drained
  }

  /** Runs one example of zeros through a version and checks its outputs are finite. */
  /**
   * Runs one deterministic pseudo-random example through the new version on the workers and
   * compares the answer with the master's own computation of the same version: catches
   * NaN/Infinity, shards that load but compute something else, and broken stages.
   */
  async #warmupCheck(entry: VersionEntry, onWorkers: boolean): Promise<void> {
    const { deployment } = entry;
    let seed = 0x2545f491;
    const next = () => {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return (seed >>> 0) / 4294967296;
    };
    const inputs: TensorData[] = deployment.served.inputs.map((spec) => {
      const shape = spec.shape.map((d, i) => (i === 0 ? 1 : (d ?? 1)));
      const size = shape.reduce((a, b) => a * b, 1);
      if (spec.dtype === 'int32')
        return { dtype: 'int32', shape, data: Int32Array.from({ length: size }, () => 0) };
      return { dtype: 'float32', shape, data: Float32Array.from({ length: size }, next) };
    });
    const fail = (why: string): never => {
      throw new DinferError(DinferErrorCode.ROLLOUT_FAILED, `warm-up check: ${why}`);
    };
    const result = await this.#run(entry, inputs, { requestId: `warmup-${deployment.version}` }, onWorkers);
    for (const output of result.outputs) {
      if (output.dtype === 'float32' && !(output.data as Float32Array).every(Number.isFinite)) {
        fail('the model produced NaN or Infinity');
      }
    }
    if (!onWorkers) return;
    // The reference: every stage run on the master.
    let activations = new Map<string, TensorData>(
      deployment.served.inputs.map((spec, i) => [spec.name, inputs[i]!]),
    );
    for (const stage of deployment.stages) {
      const outs = await deployment.runLocal(
        stage.index,
        stage.partitionStage.inputs.map((spec) => activations.get(spec.name)!),
      );
      activations = new Map([
        ...activations,
        ...stage.partitionStage.outputs.map((spec, i) => [spec.name, outs[i]!] as const),
      ]);
    }
    deployment.served.outputs.forEach((spec, i) => {
      const want = activations.get(spec.name)!.data;
      const got = result.outputs[i]!.data;
      let scale = 1;
      for (let k = 0; k < want.length; k++) scale = Math.max(scale, Math.abs(Number(want[k])));
      for (let k = 0; k < want.length; k++) {
        if (!(Math.abs(Number(got[k]) - Number(want[k])) <= 1e-3 * scale)) {
          fail(
            `output "${spec.name}" differs from the master's computation (${got[k]} vs ${want[k]} at ${k})`,
          );
        }
      }
    });
  }

  async waitUntilReady(options: WaitReadyOptions = {}): Promise<void> {
    const mostStages = Math.max(1, ...this.#activeDeployments().map((d) => d.stages.length));
    this.#minWorkers = options.minWorkers ?? mostStages;
    this.#maybeAllowPlacement();
    if (this.#ready) return;
    await new Promise<void>((resolve, reject) => {
      const timer =
        options.timeoutMs === undefined
          ? undefined
          : setTimeout(
              () =>
                reject(
                  new DinferError(
                    DinferErrorCode.TIMEOUT,
                    `cluster not ready after ${options.timeoutMs} ms: ${this.#workers.size} of ${this.#minWorkers} workers joined`,
                  ),
                ),
              options.timeoutMs,
            );
      const done = () => {
        if (timer) clearTimeout(timer);
        resolve();
      };
      this.#readyWaiters.push(done);
      options.signal?.addEventListener('abort', () => reject(abortError()), { once: true });
    });
  }

  // ---- workers ---------------------------------------------------------------------------

  #emit(event: CoordinatorEvent): void {
    try {
      this.#options.onEvent?.(event);
    } catch (error) {
      this.#log.warn({ err: message(error) }, 'event handler threw');
    }
  }

  #accept(connection: Connection): void {
    let worker: RemoteWorker | undefined;
    connection.onRequest(async (request) => {
      if (worker) {
        throw new DinferError(
          DinferErrorCode.PROTOCOL,
          `unexpected ${request.header.type} request from a worker`,
        );
      }
      const join = parseRuntimeMessage(request.header, 'join');
      const id = `w${this.#nextWorker++}`;
      worker = new RemoteWorker({
        id,
        name: join.name,
        connection,
        capabilities: join.capabilities,
        blobs: join.blobs,
        breaker: this.#options.breaker,
      });
      this.#workers.set(id, worker);
      this.#heartbeats?.watch(id);
      this.#log.info(
        { worker: id, name: join.name, address: connection.remoteAddress, ...join.capabilities },
        'worker joined',
      );
      this.#emit({ type: 'worker.joined', workerId: id, name: join.name });
      this.#metrics.set('ai_active_workers', {}, this.#workers.size);
      queueMicrotask(() => {
        this.#maybeAllowPlacement();
        if (this.#placementAllowed) void this.#requestRebalance();
      });
      return {
        header: {
          type: 'joined',
          workerId: id,
          heartbeatPort: this.#heartbeats?.port ?? 0,
          heartbeatIntervalMs: heartbeatIntervalMs(this.#options.heartbeat),
        },
        attachments: [],
      };
    });
    connection.onMessage((msg) => {
      if (!worker || msg.header.type !== 'drain') return;
      this.#log.info({ worker: worker.id, reason: msg.header.reason }, 'worker draining');
      worker.state = 'draining';
      void this.#requestRebalance();
    });
    void connection.closed.then((error) => {
      if (worker)
        this.#removeWorker(worker, error ? `connection closed: ${error.message}` : 'connection closed');
    });
  }

  #removeWorker(worker: RemoteWorker, reason: string): void {
    if (worker.state === 'gone' || this.#stopped) return;
    worker.state = 'gone';
    this.#workers.delete(worker.id);
    this.#heartbeats?.forget(worker.id);
    void worker.connection.close();
    this.#log.warn({ worker: worker.id, name: worker.name, reason }, 'worker removed');
    this.#emit({ type: 'worker.left', workerId: worker.id, reason });
    this.#metrics.set('ai_active_workers', {}, this.#workers.size);
    if (!this.#stopped) void this.#requestRebalance();
  }

  #pingAll(): void {
    const maxMissed = this.#options.maxMissedPings ?? 3;
    for (const worker of this.#workers.values()) {
      if (worker.state === 'gone') continue;
      worker.connection
        .request(
          { header: { type: 'ping' }, attachments: [] },
          { timeoutMs: this.#options.pingIntervalMs ?? 5000 },
        )
        .then((reply) => {
          const pong = parseRuntimeMessage(reply.header, 'pong');
          worker.missedPings = 0;
          worker.load = pong.load;
        })
        .catch((error: unknown) => {
          worker.missedPings++;
          this.#log.warn(
            { worker: worker.id, missed: worker.missedPings, err: message(error) },
            'health ping failed',
          );
          if (worker.missedPings >= maxMissed)
            this.#removeWorker(worker, `${worker.missedPings} health pings failed`);
        });
    }
  }

  // ---- placement and shipping ------------------------------------------------------------

  #maybeAllowPlacement(): void {
    if (this.#placementAllowed || this.#minWorkers === undefined) return;
    if (this.#workers.size >= this.#minWorkers) {
      this.#placementAllowed = true;
      void this.#requestRebalance();
    }
  }

  #requestRebalance(): Promise<void> {
    if (this.#rebalanceQueued) return this.#rebalancing;
    this.#rebalanceQueued = true;
    this.#rebalancing = this.#rebalancing.then(async () => {
      this.#rebalanceQueued = false;
      if (this.#stopped) return;
      try {
        await this.#rebalance();
      } catch (error) {
        this.#log.error({ err: message(error) }, 'rebalance failed');
      }
    });
    return this.#rebalancing;
  }

  async #rebalance(): Promise<void> {
    if (!this.#placementAllowed) return;
    const live = [...this.#workers.values()].filter((w) => w.state === 'ready' && w.connection.isOpen);
    const views = live.map((w) => w.view());
    const wanted = new Set<string>();
    let failures = 0;
    for (const entry of this.#placedVersions()) {
      const { deployment } = entry;
      const placementKey = `${deployment.name}@${deployment.version}`;
      const placement = this.#scheduler.place({
        stages: deployment.stages.map((s) => s.requirement),
        workers: views,
        current: this.#placements.get(placementKey),
      });
      const tasks: Promise<void>[] = [];
      const kept: string[][] = placement.stages.map(() => []);
      for (const stage of deployment.stages) {
        for (const id of placement.stages[stage.index] ?? []) {
          const worker = this.#workers.get(id);
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
                  entry.failures.push(`stage ${stage.index} on ${id}: ${message(error)}`);
                this.#log.error({ worker: id, stage: stage.key, err: message(error) }, 'stage load failed');
                this.#emit({ type: 'stage.failed', workerId: id, stage: stage.key, error: message(error) });
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
    this.#updateReadiness();
    if (failures > 0 && !this.#stopped && [...this.#placedVersions()].some((e) => e.state === 'active')) {
      // A worker rejected a shard or failed to load: try again soon, possibly elsewhere.
      setTimeout(() => void this.#requestRebalance(), 1000).unref();
    }
  }

  /** Versions that belong on workers: active and loading ones, and previous ones still draining. */
  *#placedVersions(): Generator<VersionEntry> {
    for (const model of this.#models.values()) {
      for (const entry of model.versions.values()) {
        if (entry.state === 'active' || entry.state === 'loading' || entry.inflight > 0) yield entry;
      }
    }
  }

  #activeDeployments(): Deployment[] {
    const out: Deployment[] = [];
    for (const model of this.#models.values()) if (model.active) out.push(model.active.deployment);
    return out;
  }

  #ensureStage(worker: RemoteWorker, stage: DeploymentStage): Promise<void> {
    if (worker.loaded.has(stage.key)) return Promise.resolve();
    const pending = worker.loading.get(stage.key);
    if (pending) return pending;
    const started = Date.now();
    const task = (async () => {
      // Delta bases: the same model's other versions (the active one first, then newest first).
      const model = this.#models.get(stage.model);
      const others = [...(model?.versions.values() ?? [])]
        .filter((e) => e.deployment.version !== stage.version)
        .reverse()
        .sort((a, b) => Number(b === model?.active) - Number(a === model?.active))
        .flatMap((e) => e.deployment.stages.map((s) => s.blobs));
      const shipped = await shipStage(worker.connection, stage.blobs, {
        held: worker.blobs,
        baseFor: deltaBaseLookup(others, worker.blobs),
        chunkBytes: this.#options.chunkBytes,
        onProgress: (sentBytes, totalBytes) =>
          this.#emit({
            type: 'shard.progress',
            workerId: worker.id,
            stage: stage.key,
            sentBytes,
            totalBytes,
          }),
      });
      this.#metrics.increment('dinfer_shard_sent_bytes_total', { model: stage.model }, shipped.wireBytes);
      this.#log.info({ worker: worker.id, stage: stage.key, ...shipped }, 'stage blobs on the worker');
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
      parseRuntimeMessage(reply.header, 'stage.loaded');
      worker.loaded.add(stage.key);
      const ms = Date.now() - started;
      this.#log.info({ worker: worker.id, stage: stage.key, ms }, 'stage loaded');
      this.#emit({ type: 'stage.loaded', workerId: worker.id, stage: stage.key, ms });
      this.#updateReadiness();
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

  #replicas(stage: DeploymentStage): RemoteWorker[] {
    const out: RemoteWorker[] = [];
    for (const worker of this.#workers.values()) {
      if (worker.loaded.has(stage.key) && worker.routable) out.push(worker);
    }
    return out;
  }

  #updateReadiness(): void {
    const active = this.#activeDeployments();
    let allServed = active.length > 0;
    for (const deployment of active) {
      for (const stage of deployment.stages) {
        const served = this.#replicas(stage).length > 0;
        if (!served) allServed = false;
        const wasDegraded = this.#degradedStages.has(stage.key);
        if (this.#ready && !served && !wasDegraded) {
          this.#degradedStages.add(stage.key);
          this.#log.warn(
            { stage: stage.key },
            'no worker serves this stage: the master runs it (degraded mode)',
          );
          this.#emit({ type: 'degraded', model: deployment.name, stage: stage.index, active: true });
        } else if (served && wasDegraded) {
          this.#degradedStages.delete(stage.key);
          this.#log.info({ stage: stage.key }, 'a worker serves this stage again: degraded mode over');
          this.#emit({ type: 'degraded', model: deployment.name, stage: stage.index, active: false });
        }
      }
    }
    this.#metrics.set('dinfer_degraded', {}, this.#degradedStages.size > 0 ? 1 : 0);
    if (allServed && !this.#ready) {
      this.#ready = true;
      this.#log.info({ workers: this.#workers.size }, 'cluster ready');
      this.#emit({ type: 'ready' });
    }
    if (this.#ready) {
      const waiters = this.#readyWaiters;
      this.#readyWaiters = [];
      for (const resolve of waiters) resolve();
    }
  }

  // ---- inference -------------------------------------------------------------------------

  models(): readonly ServedModel[] {
    const out: ServedModel[] = [];
    for (const model of this.#models.values()) {
      if (!model.active) continue;
      const versions = [...model.versions.values()]
        .filter((e) => e.state !== 'failed')
        .map((e) => e.deployment.version);
      out.push({ ...model.active.deployment.served, versions });
    }
    return out;
  }

  health(): ServiceHealth {
    return {
      live: !this.#stopped,
      ready: this.#ready && !this.#stopped,
      degraded: this.#degradedStages.size > 0,
    };
  }

  async infer(
    model: string,
    inputs: readonly TensorData[],
    options: InferOptions = {},
  ): Promise<InferResult> {
    const entry = this.#entryFor(model, options.version);
    if (this.#stopped) throw new DinferError(DinferErrorCode.NOT_READY, 'the server is shutting down');
    if (!this.#ready) {
      throw new DinferError(DinferErrorCode.NOT_READY, 'the cluster is not ready yet: waiting for workers', {
        details: { workers: this.#workers.size, minWorkers: this.#minWorkers, retryAfterMs: 1000 },
      });
    }
    validateModelInputs(entry.deployment.served.inputs, inputs);
    return this.#run(entry, inputs, options, false);
  }

  /** The version a request runs on: the one asked for, else the active one. */
  #entryFor(modelName: string, version: string | undefined): VersionEntry {
    const model = this.#model(modelName);
    if (version !== undefined) {
      const entry = model.versions.get(version);
      if (!entry || entry.state === 'failed') {
        const known = [...model.versions.values()]
          .filter((e) => e.state !== 'failed')
          .map((e) => e.deployment.version);
        throw new DinferError(
          DinferErrorCode.UNKNOWN_MODEL,
          `model "${modelName}" has no usable version "${version}"; available: ${known.join(', ') || 'none'}`,
          { details: { model: modelName, version, known } },
        );
      }
      return entry;
    }
    if (!model.active) {
      throw new DinferError(DinferErrorCode.NOT_READY, `model "${modelName}" is still loading`, {
        details: { retryAfterMs: 1000 },
      });
    }
    return model.active;
  }

  /** Runs a request through every stage of a pinned version. */
  async #run(
    entry: VersionEntry,
    inputs: readonly TensorData[],
    options: InferOptions,
    workersOnly: boolean,
  ): Promise<InferResult> {
    const started = performance.now();
    const { deployment } = entry;
    entry.inflight++;
    try {
      const requestId = options.requestId ?? randomUUID();
      const activations = new Map<string, TensorData>();
      deployment.served.inputs.forEach((spec, i) => {
        activations.set(spec.name, inputs[i] as TensorData);
      });
      const nodes: StageTrace[] = [];
      let degraded = false;
      for (const stage of deployment.stages) {
        const stageInputs = stage.partitionStage.inputs.map((spec) => {
          const value = activations.get(spec.name);
          if (!value) {
            throw new DinferError(
              DinferErrorCode.INTERNAL,
              `stage ${stage.index} input ${spec.name} missing`,
            );
          }
          return value;
        });
        const result = await this.#runStage(deployment, stage, stageInputs, requestId, options, workersOnly);
        nodes.push(result.trace);
        degraded ||= result.trace.worker === 'master';
        stage.partitionStage.outputs.forEach((spec, i) => {
          activations.set(spec.name, result.outputs[i] as TensorData);
        });
        // Keep only what later stages or the final answer still need.
        const needed = new Set<string>(deployment.served.outputs.map((o) => o.name));
        for (const later of deployment.stages.slice(stage.index + 1)) {
          for (const spec of later.partitionStage.inputs) needed.add(spec.name);
        }
        for (const name of [...activations.keys()]) if (!needed.has(name)) activations.delete(name);
      }
      const outputs = deployment.served.outputs.map((spec) => {
        const value = activations.get(spec.name);
        if (!value) throw new DinferError(DinferErrorCode.INTERNAL, `model output ${spec.name} missing`);
        return value;
      });
      return {
        model: deployment.name,
        version: deployment.version,
        outputs,
        nodes,
        degraded,
        processingTimeMs: performance.now() - started,
      };
    } finally {
      entry.inflight--;
      if (entry.inflight === 0 && entry.state === 'standby') void this.#requestRebalance();
    }
  }

  async #runStage(
    deployment: Deployment,
    stage: DeploymentStage,
    inputs: readonly TensorData[],
    requestId: string,
    options: InferOptions,
    workersOnly = false,
  ): Promise<{ outputs: TensorData[]; trace: StageTrace }> {
    const retry = this.#options.retry;
    const maxAttempts = retry?.maxAttempts ?? 5;
    let backoff: IBackoff<unknown> = createBackoff({
      initialDelayMs: retry?.initialDelayMs ?? 25,
      maxDelayMs: retry?.maxDelayMs ?? 2000,
      jitter: true,
    }).next(undefined);
    const tried = new Set<string>();
    const encoded = encodeTensors(inputs, {
      encoding: this.#options.activationEncoding,
      deflateAboveBytes: this.#options.deflateAboveBytes,
    });
    let lastError: unknown;
    for (let attempt = 0; attempt < maxAttempts; attempt++) {
      if (options.signal?.aborted) throw abortError();
      const remaining =
        options.deadline === undefined ? Number.POSITIVE_INFINITY : options.deadline - Date.now();
      if (remaining <= 0) {
        throw new DinferError(
          DinferErrorCode.TIMEOUT,
          `request ${requestId} passed its deadline at stage ${stage.index}`,
        );
      }
      const replicas = this.#replicas(stage);
      if (replicas.length === 0) break;
      const fresh = replicas.filter((w) => !tried.has(w.id));
      const pool = fresh.length > 0 ? fresh : replicas;
      const views = new Map<WorkerView, RemoteWorker>(pool.map((w) => [w.view(), w]));
      const chosenView = this.#scheduler.route(stage.index, [...views.keys()]);
      const worker = views.get(chosenView) ?? pool[0]!;
      const t0 = performance.now();
      worker.inflight++;
      try {
        const reply: Envelope = await worker.breaker.execute(
          () =>
            worker.connection.request(
              {
                header: { type: 'infer', key: stage.key, requestId, tensors: encoded.descriptors },
                attachments: encoded.attachments,
              },
              {
                signal: options.signal,
                timeoutMs: Math.min(this.#options.stageTimeoutMs ?? 60_000, remaining),
              },
            ),
          options.signal,
        );
        const result = parseRuntimeMessage(reply.header, 'infer.result');
        const outputs = decodeTensors(result.tensors, reply.attachments, {
          maxBytes: this.#options.maxTensorBytes ?? 1024 ** 3,
        });
        if (outputs.length !== stage.partitionStage.outputs.length) {
          throw new DinferError(
            DinferErrorCode.PROTOCOL,
            `worker ${worker.id} returned ${outputs.length} tensors for stage ${stage.index}, expected ${stage.partitionStage.outputs.length}`,
          );
        }
        const ms = performance.now() - t0;
        worker.completed++;
        this.#metrics.set('dinfer_worker_breaker_open', { worker: worker.id }, 0);
        const labels = { model: deployment.name, stage: String(stage.index) };
        this.#metrics.observe('dinfer_stage_duration_seconds', labels, ms / 1000);
        this.#metrics.observe('dinfer_stage_compute_seconds', labels, result.computeMs / 1000);
        this.#metrics.observe('dinfer_stage_queue_seconds', labels, result.queueMs / 1000);
        // Transfer: what the call cost beyond the worker's queue and compute (both directions).
        this.#metrics.observe(
          'dinfer_stage_transfer_seconds',
          labels,
          Math.max(0, ms - result.computeMs - result.queueMs) / 1000,
        );
        this.#metrics.increment('dinfer_stage_bytes_sent_total', labels, byteLength(encoded.attachments));
        this.#metrics.increment('dinfer_stage_bytes_received_total', labels, byteLength(reply.attachments));
        this.#log.debug(
          { requestId, stage: stage.key, worker: worker.id, ms: Math.round(ms * 100) / 100, attempt },
          'stage done',
        );
        return { outputs, trace: { stage: stage.index, worker: worker.id, ms, retries: attempt } };
      } catch (error) {
        lastError = error;
        worker.failed++;
        tried.add(worker.id);
        this.#metrics.set('dinfer_worker_breaker_open', { worker: worker.id }, worker.routable ? 0 : 1);
        if (options.signal?.aborted) throw abortError();
        if (!isRetryable(error)) throw error;
        this.#metrics.increment('dinfer_stage_retries_total', {
          model: deployment.name,
          stage: String(stage.index),
        });
        this.#log.warn(
          {
            requestId,
            stage: stage.key,
            worker: worker.id,
            attempt,
            err: message(error),
            workerFault: isWorkerFault(error),
          },
          'stage call failed; retrying',
        );
        if (attempt + 1 < maxAttempts) {
          await sleep(backoff.duration, options.signal);
          backoff = backoff.next(undefined);
        }
      } finally {
        worker.inflight--;
      }
    }
    if (workersOnly || this.#options.degradeOnLoss === false) {
      throw new DinferError(
        DinferErrorCode.NO_WORKER,
        `no worker could serve stage ${stage.index} of ${deployment.name}`,
        {
          cause: lastError,
        },
      );
    }
    // Degraded mode: the master holds every stage and runs this one itself.
    this.#updateReadiness();
    this.#log.warn(
      { requestId, stage: stage.key, err: lastError && message(lastError) },
      'running stage on the master',
    );
    const t0 = performance.now();
    const outputs = await deployment.runLocal(stage.index, inputs);
    return {
      outputs,
      trace: { stage: stage.index, worker: 'master', ms: performance.now() - t0, retries: tried.size },
    };
  }

  // ---- status ----------------------------------------------------------------------------

  status(): ClusterStatus {
    const now = Date.now();
    const stages: StageStatus[] = [];
    for (const entry of this.#placedVersions()) {
      const { deployment } = entry;
      for (const stage of deployment.stages) {
        const replicas = this.#replicas(stage).map((w) => w.id);
        stages.push({
          model: deployment.name,
          version: deployment.version,
          index: stage.index,
          layers: [stage.partitionStage.layers[0], stage.partitionStage.layers[1]],
          weightBytes: stage.partitionStage.weightBytes,
          replicas,
          degraded: this.#ready && replicas.length === 0,
        });
      }
    }
    return {
      ready: this.#ready,
      degraded: stages.some((s) => s.degraded),
      stages,
      workers: [...this.#workers.values()].map((w) => ({
        id: w.id,
        name: w.name,
        address: w.connection.remoteAddress,
        backend: w.capabilities.backend,
        cores: w.capabilities.cores,
        score: w.capabilities.score,
        stages: [...w.loaded],
        state: w.state,
        breaker: w.breakerState,
        heartbeatAgeMs: w.lastHeartbeatAt === undefined ? null : now - w.lastHeartbeatAt,
        cpu: w.load?.cpu ?? null,
        freeMemoryBytes: w.load?.freeMemoryBytes ?? null,
        queueLength: w.load?.queueLength ?? null,
        inflight: w.inflight,
        completed: w.completed,
        failed: w.failed,
      })),
    };
  }
}

function byteLength(buffers: readonly Uint8Array[]): number {
  let total = 0;
  for (const b of buffers) total += b.byteLength;
  return total;
}

/**
 * The interval workers are asked to beat at: the configured one, else 2000 ms but at most a
 * third of the timeout, so a short timeout (e.g. 1500 ms) does not remove healthy workers.
 */
function heartbeatIntervalMs(hb: CoordinatorOptions['heartbeat']): number {
  if (hb?.intervalMs !== undefined) return hb.intervalMs;
  return Math.max(1, Math.min(2000, Math.floor((hb?.timeoutMs ?? 30_000) / 3)));
}

function hostOf(address: string): string {
  const i = address.lastIndexOf(':');
  const host = i < 0 ? address : address.slice(0, i);
  return host.replace(/^\[|\]$/g, '') || '0.0.0.0';
}

interface VersionEntry {
  readonly deployment: Deployment;
  state: VersionState;
  error: string | undefined;
  inflight: number;
  /** Load failures seen during the current rollout. */
  failures: string[];
}

interface ModelEntry {
  readonly name: string;
  active: VersionEntry | undefined;
  readonly versions: Map<string, VersionEntry>;
}
