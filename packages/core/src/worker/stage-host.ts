/**
 * The stages a worker holds: built from cached blobs and warmed up on `stage.load`, freed on
 * `stage.unload`, and run for `infer` requests one at a time through the worker's queue.
 *
 * @module
 */
import { platform } from '#platform';
import type { Connection, RequestContext } from '../connection/connection.js';
import { DinferError, DinferErrorCode, isDinferError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import { stageTensorHashes } from '../partition/stage-artifacts.js';
import { releaseAttachments } from '../protocol/frame-buffer-pool.js';
import {
  type InferMessage,
  messageEnvelope,
  type ProtocolMessage,
  type StageKey,
  type StageLoadMessage,
} from '../protocol/messages.js';
import type { BlobStore } from '../ship/blob-store.js';
import { decodeTensors, encodeTensors } from '../tensor/codec.js';
import type { TensorLimits } from '../tensor/descriptor.js';
import type { Envelope } from '../transport.js';
import type { LoadMonitor } from './load-monitor.js';
import { type LoadedStage, loadStage } from './loaded-stage.js';
import type { WorkQueue } from './worker-queue.js';

function notReady(message: string): DinferError {
  return new DinferError(DinferErrorCode.NOT_READY, message);
}

/** Collaborators of a {@link StageHost}. */
export interface StageHostOptions {
  readonly store: BlobStore;
  readonly queue: WorkQueue;
  /** Limits on incoming inference tensors. */
  readonly limits: TensorLimits;
  readonly logger: Logger;
  readonly metrics: Metrics;
  /** The load monitor that records compute times, once the worker has started. */
  readonly monitor: () => LoadMonitor | undefined;
  /** True while the worker drains or stops: new loads and requests are refused. */
  readonly closing: () => boolean;
  /** True once the worker is stopping: a load that finishes then is discarded. */
  readonly stopped: () => boolean;
}

/** Loads, runs and frees a worker's stages. */
export class StageHost {
  readonly #stages = new Map<StageKey, LoadedStage>();
  /** Stage loads in progress, so two loads of one key never race. */
  readonly #loading = new Map<StageKey, Promise<LoadedStage>>();
  readonly #store: BlobStore;
  readonly #queue: WorkQueue;
  readonly #limits: TensorLimits;
  readonly #logger: Logger;
  readonly #metrics: Metrics;
  readonly #monitor: () => LoadMonitor | undefined;
  readonly #closing: () => boolean;
  readonly #stopped: () => boolean;

  constructor(options: StageHostOptions) {
    this.#store = options.store;
    this.#queue = options.queue;
    this.#limits = options.limits;
    this.#logger = options.logger;
    this.#metrics = options.metrics;
    this.#monitor = options.monitor;
    this.#closing = options.closing;
    this.#stopped = options.stopped;
  }

  /** Keys of the stages loaded now. */
  keys(): StageKey[] {
    return [...this.#stages.keys()];
  }

  /** The loaded stage `key`, if any. */
  get(key: StageKey): LoadedStage | undefined {
    return this.#stages.get(key);
  }

  /** Resolves once no load is in progress (each settled, successful or not). */
  async settleLoads(): Promise<void> {
    await Promise.all([...this.#loading.values()].map((p) => p.catch(() => undefined)));
  }

  /** Builds (or reuses) a stage and warms it up. */
  async load(message: StageLoadMessage, connection: Connection): Promise<ProtocolMessage> {
    if (this.#closing()) throw notReady('the worker is shutting down');
    const current = this.#stages.get(message.key);
    if (
      current?.spec.topology === message.topology &&
      current.spec.weights.length === message.weights.length &&
      current.spec.weights.every((sha, i) => sha === message.weights[i])
    ) {
      return { type: 'stage.loaded', key: message.key, warmupMs: current.warmupMs };
    }
    const pending = this.#loading.get(message.key);
    if (pending !== undefined) await pending.catch(() => undefined);
    const task = this.#build(message, connection);
    this.#loading.set(message.key, task);
    try {
      const stage = await task;
      return { type: 'stage.loaded', key: message.key, warmupMs: stage.warmupMs };
    } finally {
      if (this.#loading.get(message.key) === task) this.#loading.delete(message.key);
    }
  }

  async #build(message: StageLoadMessage, connection: Connection): Promise<LoadedStage> {
    const spec = {
      key: message.key,
      topology: message.topology,
      weights: [...message.weights],
      inputs: [...message.inputs],
      outputs: [...message.outputs],
    };
    // Pinned while loaded, so eviction cannot take a blob between the reads.
    const pinned = [spec.topology, ...spec.weights];
    for (const sha of pinned) this.#store.pin(sha);
    let stage: LoadedStage;
    try {
      const topology = await this.#store.read(spec.topology);
      const listed = stageTensorHashes(topology, `stage ${spec.key}`);
      if (listed.length !== spec.weights.length || listed.some((sha, i) => sha !== spec.weights[i])) {
        throw new DinferError(
          DinferErrorCode.MODEL_CORRUPT,
          `stage ${spec.key}: stage.load lists other weight blobs than its model.json`,
          { details: { key: spec.key } },
        );
      }
      // One blob read at a time: the stage's weights are never all in this process twice.
      stage = await loadStage(spec, topology, (group) => this.#store.read(spec.weights[group]!));
    } catch (error) {
      for (const sha of pinned) this.#store.unpin(sha);
      throw error;
    }
    if (this.#stopped() || !connection.isOpen) {
      stage.dispose();
      for (const sha of pinned) this.#store.unpin(sha);
      throw notReady('the worker is shutting down');
    }
    const previous = this.#stages.get(spec.key);
    if (previous !== undefined) this.unload(previous);
    this.#stages.set(spec.key, stage);
    this.#metrics.set('dinfer_worker_stages', {}, this.#stages.size);
    this.#logger.info({ key: spec.key, warmupMs: Math.round(stage.warmupMs) }, 'stage loaded');
    return stage;
  }

  /** Frees a loaded stage and unpins its blobs. */
  unload(stage: LoadedStage): void {
    if (this.#stages.get(stage.spec.key) === stage) this.#stages.delete(stage.spec.key);
    stage.dispose();
    this.#store.unpin(stage.spec.topology);
    for (const sha of stage.spec.weights) this.#store.unpin(sha);
    this.#metrics.set('dinfer_worker_stages', {}, this.#stages.size);
    this.#logger.info({ key: stage.spec.key }, 'stage unloaded');
  }

  /** Frees every loaded stage. */
  unloadAll(): void {
    for (const stage of [...this.#stages.values()]) this.unload(stage);
  }

  async infer(
    message: InferMessage,
    attachments: readonly Uint8Array[],
    context: RequestContext,
  ): Promise<Envelope> {
    if (this.#closing()) throw notReady('the worker is draining');
    if (!this.#stages.has(message.key)) throw notReady(`stage ${message.key} is not loaded on this worker`);
    const inputs = decodeTensors(message.tensors, attachments, this.#limits);
    let outcome: {
      result: { outputs: Awaited<ReturnType<LoadedStage['run']>>; computeMs: number };
      queueMs: number;
    };
    // A task queued behind another starts in the microtask that settles the previous one,
    // before the previous reply has reached the socket; computing then would hold that reply
    // back by a compute slice. Yield one macrotask first so the reply goes out, and the next
    // stage downstream can start on it.
    const queued = this.#queue.busy;
    try {
      outcome = await this.#queue.run(async () => {
        if (queued) await platform.yieldToEventLoop();
        // Looked up again: the stage may have been unloaded while the request waited.
        const stage = this.#stages.get(message.key);
        if (stage === undefined) throw notReady(`stage ${message.key} was unloaded`);
        const start = performance.now();
        const outputs = await stage.run(inputs, { signal: context.signal });
        const computeMs = performance.now() - start;
        this.#monitor()?.recordCompute(computeMs);
        return { outputs, computeMs };
      }, context.signal);
    } catch (error) {
      const code = isDinferError(error) ? error.code : DinferErrorCode.INTERNAL;
      this.#metrics.increment('dinfer_worker_infer_total', { status: code });
      this.#logger.debug(
        { requestId: message.requestId, stage: message.key, code, err: (error as Error)?.message },
        'stage failed',
      );
      throw error;
    } finally {
      // The stage copied its inputs into its backend, or never will: the frame can be reused.
      releaseAttachments(attachments);
    }
    const { outputs, computeMs } = outcome.result;
    this.#logger.debug(
      {
        requestId: message.requestId,
        stage: message.key,
        computeMs: Math.round(computeMs * 100) / 100,
        queueMs: Math.round(outcome.queueMs * 100) / 100,
      },
      'stage computed',
    );
    const encoded = encodeTensors(outputs);
    this.#metrics.increment('dinfer_worker_infer_total', { status: 'ok' });
    this.#metrics.observe('dinfer_worker_compute_seconds', {}, computeMs / 1000);
    return messageEnvelope(
      { type: 'infer.result', tensors: encoded.descriptors, computeMs, queueMs: outcome.queueMs },
      encoded.attachments,
    );
  }
}
