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
import { ExponentialBackoff, type IBackoff } from 'cockatiel';
import { DinferError, DinferErrorCode, isDinferError } from '../errors.js';
import { silentLogger } from '../logger.js';
import { noopMetrics } from '../metrics.js';
import type { Placement, WorkerView } from '../scheduler.js';
import { roundRobinScheduler } from '../schedulers/round-robin.js';
import { decodeTensors, encodeTensors } from '../tensor/codec.js';
import type { TensorData } from '../tensor/types.js';
import type { Connection, Envelope, Listener } from '../transport.js';
import { shipBlob } from './blob-shipper.js';
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
import { createHeartbeatReceiver } from './heartbeat.js';
import type {
  InferenceService,
  InferOptions,
  InferResult,
  ServedModel,
  ServiceHealth,
  StageTrace,
} from './inference-service.js';
import { parseRuntimeMessage } from './messages.js';
import { isWorkerFault, RemoteWorker } from './remote-worker.js';
import { validateModelInputs } from './validate-inputs.js';

export type * from './coordinator-types.js';

/** Options of {@link Coordinator.waitUntilReady}. */
export interface WaitReadyOptions {
  /** Workers to wait for before placing stages. Default: the most stages of any model. */
  readonly minWorkers?: number | undefined;
  readonly timeoutMs?: number | undefined;
  readonly signal?: AbortSignal | undefined;
}

/** The master's runtime: an {@link InferenceService} over a cluster of workers. */
export interface Coordinator extends InferenceService {
  /** Listens for workers. Resolves with the bound cluster address and heartbeat port. */
  start(): Promise<{ address: string; heartbeatPort: number }>;
  /** Prepares a model version (partition + shard blobs) and places it once workers are there. */
  deploy(spec: DeploymentSpec): Promise<Deployment>;
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
  readonly #deployments = new Map<string, Deployment>();
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
    this.#listener = await this.#options.transport.listen(this.#options.listen, (connection) =>
      this.#accept(connection),
    );
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

  async deploy(spec: DeploymentSpec): Promise<Deployment> {
    const deployment = await createDeployment(spec);
    this.#deployments.set(deployment.name, deployment);
    if (this.#placementAllowed) await this.#requestRebalance();
    return deployment;
  }

  async waitUntilReady(options: WaitReadyOptions = {}): Promise<void> {
    const mostStages = Math.max(1, ...[...this.#deployments.values()].map((d) => d.stages.length));
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
          heartbeatIntervalMs: this.#options.heartbeat?.intervalMs ?? 2000,
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
    let failures = 0;
    for (const deployment of this.#deployments.values()) {
      const placement = this.#scheduler.place({
        stages: deployment.stages.map((s) => s.requirement),
        workers: views,
        current: this.#placements.get(deployment.name),
      });
      const tasks: Promise<void>[] = [];
      const kept: string[][] = placement.stages.map(() => []);
      for (const stage of deployment.stages) {
        for (const id of placement.stages[stage.index] ?? []) {
          const worker = this.#workers.get(id);
          if (!worker) continue;
          tasks.push(
            this.#ensureStage(worker, stage).then(
              () => {
                kept[stage.index]?.push(id);
              },
              (error: unknown) => {
                failures++;
                this.#log.error({ worker: id, stage: stage.key, err: message(error) }, 'stage load failed');
                this.#emit({ type: 'stage.failed', workerId: id, stage: stage.key, error: message(error) });
              },
            ),
          );
        }
      }
      await Promise.all(tasks);
      this.#placements.set(deployment.name, { stages: kept });
      // Drop stages a worker no longer serves, to free its memory.
      for (const worker of live) {
        for (const stage of deployment.stages) {
          if (worker.loaded.has(stage.key) && !kept[stage.index]?.includes(worker.id)) {
            worker.loaded.delete(stage.key);
            worker.connection
              .request(
                { header: { type: 'stage.unload', key: stage.key }, attachments: [] },
                { timeoutMs: 30_000 },
              )
              .catch(() => {});
          }
        }
      }
    }
    this.#updateReadiness();
    if (failures > 0 && !this.#stopped) {
      // A worker rejected a shard or failed to load: try again soon, possibly elsewhere.
      setTimeout(() => void this.#requestRebalance(), 1000).unref();
    }
  }

  #ensureStage(worker: RemoteWorker, stage: DeploymentStage): Promise<void> {
    if (worker.loaded.has(stage.key)) return Promise.resolve();
    const pending = worker.loading.get(stage.key);
    if (pending) return pending;
    const started = Date.now();
    const task = (async () => {
      const total = stage.topology.byteLength + stage.weights.byteLength;
      let before = 0;
      for (const [sha, bytes] of [
        [stage.topologySha256, stage.topology],
        [stage.weightsSha256, stage.weights],
      ] as const) {
        if (!worker.blobs.has(sha)) {
          const base = before;
          await shipBlob(worker.connection, sha, bytes, {
            chunkBytes: this.#options.chunkBytes,
            onProgress: (sent) =>
              this.#emit({
                type: 'shard.progress',
                workerId: worker.id,
                stage: stage.key,
                sentBytes: base + sent,
                totalBytes: total,
              }),
          });
          worker.blobs.add(sha);
        }
        before += bytes.byteLength;
      }
      this.#emit({
        type: 'shard.progress',
        workerId: worker.id,
        stage: stage.key,
        sentBytes: total,
        totalBytes: total,
      });
      const reply = await worker.connection.request(
        {
          header: {
            type: 'stage.load',
            key: stage.key,
            topology: stage.topologySha256,
            weights: stage.weightsSha256,
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
        worker.blobs.delete(stage.topologySha256);
        worker.blobs.delete(stage.weightsSha256);
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
    let allServed = this.#deployments.size > 0;
    for (const deployment of this.#deployments.values()) {
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
    return [...this.#deployments.values()].map((d) => d.served);
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
    const started = performance.now();
    const deployment = this.#deployments.get(model);
    if (!deployment) {
      const known = [...this.#deployments.keys()];
      throw new DinferError(
        DinferErrorCode.UNKNOWN_MODEL,
        `unknown model "${model}"; this server serves ${known.length ? known.map((k) => `"${k}"`).join(', ') : 'no models'}`,
        { details: { model, known } },
      );
    }
    if (this.#stopped) throw new DinferError(DinferErrorCode.NOT_READY, 'the server is shutting down');
    if (!this.#ready) {
      throw new DinferError(DinferErrorCode.NOT_READY, 'the cluster is not ready yet: waiting for workers', {
        details: { workers: this.#workers.size, minWorkers: this.#minWorkers },
      });
    }
    validateModelInputs(deployment.served.inputs, inputs);
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
        if (!value)
          throw new DinferError(DinferErrorCode.INTERNAL, `stage ${stage.index} input ${spec.name} missing`);
        return value;
      });
      const result = await this.#runStage(deployment, stage, stageInputs, requestId, options);
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
  }

  async #runStage(
    deployment: Deployment,
    stage: DeploymentStage,
    inputs: readonly TensorData[],
    requestId: string,
    options: InferOptions,
  ): Promise<{ outputs: TensorData[]; trace: StageTrace }> {
    const retry = this.#options.retry;
    const maxAttempts = retry?.maxAttempts ?? 5;
    let backoff: IBackoff<unknown> = new ExponentialBackoff({
      initialDelay: retry?.initialDelayMs ?? 25,
      maxDelay: retry?.maxDelayMs ?? 2000,
    }).next();
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
    if (this.#options.degradeOnLoss === false) {
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
    for (const deployment of this.#deployments.values()) {
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

function hostOf(address: string): string {
  const i = address.lastIndexOf(':');
  const host = i < 0 ? address : address.slice(0, i);
  return host.replace(/^\[|\]$/g, '') || '0.0.0.0';
}
