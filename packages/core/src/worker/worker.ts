/**
 * The worker runtime: dials the master (core's `dialConnection` over any {@link Transport}),
 * joins with its capabilities and cached blobs, and serves the master's requests (blob
 * shipping, stage loading, inference, pings). When the link drops it redials and joins again
 * with core's backoff (`retryWithBackoff`), keeps its shards in the blob store it is given (on disk
 * across restarts, with `@dinfer/core/node`'s `createBlobStore`), and
 * drains gracefully on stop.
 *
 * @module
 */
import { platform } from '#platform';
import {
  type ReconnectOptions,
  type ResolvedReconnectOptions,
  resolveReconnectOptions,
  retryWithBackoff,
} from '../connection/backoff.js';
import type { Connection, RequestContext } from '../connection/connection.js';
import { dialConnection } from '../connection/dial-connection.js';
import { DinferError, DinferErrorCode, isDinferError } from '../errors.js';
import type { HeartbeatSender, HeartbeatSenderFactory } from '../heartbeats.js';
import { type Logger, silentLogger } from '../logger.js';
import { type Metrics, noopMetrics } from '../metrics.js';
import {
  messageEnvelope,
  type ProtocolMessage,
  parseMessage,
  parseMessageHeader,
  type StageKey,
} from '../protocol/messages.js';
import type { WorkerCapabilities, WorkerLoad } from '../scheduler.js';
import type { BlobStore } from '../ship/blob-store.js';
import { memoryBlobStore } from '../ship/memory-blob-store.js';
import type { TensorLimits } from '../tensor/descriptor.js';
import type { Envelope, Transport } from '../transport.js';
import { BlobReceiver } from './blob-receiver.js';
import { measureCapabilities } from './capabilities.js';
import { createLoadMonitor, type LoadMonitor } from './load-monitor.js';
import { StageHost } from './stage-host.js';
import { createWorkQueue, type WorkQueue } from './worker-queue.js';

/** Lifecycle states of a {@link DinferWorker}. */
export type WorkerState = 'idle' | 'connecting' | 'ready' | 'draining' | 'stopped';

/** Options for {@link createWorker}. */
export interface WorkerOptions {
  /** How to reach the master. */
  readonly transport: Transport;
  /** The master's address, in the transport's format. */
  readonly master: string;
  /** The cluster token: authenticates the connection to the master (core's handshake) and signs heartbeats. */
  readonly token?: string | undefined;
  /** Name announced in `join`. Default `<hostname>-<pid>`. */
  readonly name?: string | undefined;
  /**
   * Where the worker keeps the shards it is sent; the worker owns it from now on (it closes it
   * on stop). In Node, `createBlobStore({ dir })` from `@dinfer/core/node` keeps them on disk
   * across restarts, so a restarted worker is sent nothing again. Default: in memory.
   */
  readonly store?: BlobStore | undefined;
  /** Inference requests allowed to wait behind the running one; more get `OVERLOADED`. Default 64. */
  readonly queueLimit?: number | undefined;
  /** Declared capabilities. Default: measured at start with `measureCapabilities()`. */
  readonly capabilities?: WorkerCapabilities | undefined;
  /**
   * Sends heartbeats when the master asks for them (`joined.heartbeatPort > 0`), signed with
   * this worker's connection session key: `createHeartbeatSender` from `@dinfer/core/node`
   * sends UDP datagrams. Default: none (the master's health pings carry the load instead).
   */
  readonly heartbeats?: HeartbeatSenderFactory | undefined;
  /** Host of the master's heartbeat receiver. Default: the host part of `master`. */
  readonly heartbeatHost?: string | undefined;
  /**
   * Redial backoff (core's {@link ReconnectOptions}; default 200 ms to 10 s, decorrelated
   * jitter, never giving up), or `false` to give up when the link drops (and fail `start`
   * on the first error).
   */
  readonly reconnect?: ReconnectOptions | false | undefined;
  /** Limits on incoming inference tensors. Default `{ maxBytes: 512 MiB }`. */
  readonly tensorLimits?: TensorLimits | undefined;
  /** Largest raw size of one blob chunk. Default 64 MiB. */
  readonly maxChunkBytes?: number | undefined;
  /** Largest blob rebuilt from a `blob.delta` (the target's size). Default 256 MiB. */
  readonly maxDeltaBytes?: number | undefined;
  /** Timeout of the `join` request, in ms. Default 30 000. */
  readonly joinTimeoutMs?: number | undefined;
  readonly logger?: Logger | undefined;
  readonly metrics?: Metrics | undefined;
}

/** Options for {@link DinferWorker.stop}. */
export interface WorkerStopOptions {
  /** Tell the master, refuse new work with `NOT_READY`, finish queued work, then close. Default false. */
  readonly drain?: boolean | undefined;
}

/** A worker process's runtime. */
export interface DinferWorker {
  /** The id the master gave at the last join (`undefined` before the first). */
  readonly workerId: string | undefined;
  readonly state: WorkerState;
  /** The worker's blob cache. */
  readonly store: BlobStore;
  /** Capabilities announced (after `start`). */
  readonly capabilities: WorkerCapabilities | undefined;
  /**
   * Dials the master and joins; resolves once joined. Transient failures (nothing listening,
   * link closed, timeouts) are retried with backoff unless `reconnect` is `false`; others
   * (e.g. `AUTH_FAILED`) and `signal` aborting reject.
   */
  start(signal?: AbortSignal): Promise<void>;
  /** Leaves the cluster (see {@link WorkerStopOptions}) and frees every stage. Idempotent. */
  stop(options?: WorkerStopOptions): Promise<void>;
  /** Keys of the stages loaded now. */
  stages(): StageKey[];
  /** The current load, as heartbeats and `pong` report it. */
  load(): WorkerLoad;
  /** Calls `listener` on each state change; returns a function that removes it. */
  onStateChange(listener: (state: WorkerState, previous: WorkerState) => void): () => void;
}

/** Default bound on the decoded bytes of one inference request. */
export const DEFAULT_WORKER_TENSOR_BYTES = 512 * 1024 * 1024;
/** Default bound on the raw bytes of one blob chunk. */
export const DEFAULT_MAX_CHUNK_BYTES = 64 * 1024 * 1024;
/** Default bound on the size of a blob rebuilt from a delta. */
export const DEFAULT_MAX_DELTA_BYTES_WORKER = 256 * 1024 * 1024;
const RETRYABLE = new Set<string>([
  DinferErrorCode.TRANSPORT_CONNECT,
  DinferErrorCode.TRANSPORT_CLOSED,
  DinferErrorCode.TIMEOUT,
]);

/** The host part of a transport address: `host:port`, `[v6]:port` or a URL. */
export function addressHost(address: string): string | undefined {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(address)) {
    try {
      return new URL(address).hostname.replace(/^\[(.*)\]$/, '$1') || undefined;
    } catch {
      return undefined;
    }
  }
  const v6 = /^\[([^\]]+)\]:\d+$/.exec(address);
  if (v6) return v6[1];
  const plain = /^([^:/]+):\d+$/.exec(address);
  return plain?.[1];
}

/** `<host>-<pid>`, or `<host>-<random>` where processes have no id (a browser tab). */
function defaultWorkerName(): string {
  const { hostname, pid } = platform.machine();
  const suffix = pid ?? Math.floor(Math.random() * 0xffffff).toString(16);
  return `${hostname}-${suffix}`;
}

function notReady(message: string): DinferError {
  return new DinferError(DinferErrorCode.NOT_READY, message);
}

class Worker implements DinferWorker {
  readonly store: BlobStore;
  workerId: string | undefined;
  capabilities: WorkerCapabilities | undefined;
  #state: WorkerState = 'idle';
  readonly #options: WorkerOptions;
  readonly #logger: Logger;
  readonly #metrics: Metrics;
  readonly #queue: WorkQueue;
  readonly #limits: TensorLimits;
  readonly #reconnect: ResolvedReconnectOptions | false;
  readonly #listeners = new Set<(state: WorkerState, previous: WorkerState) => void>();
  readonly #blobs: BlobReceiver;
  readonly #host: StageHost;
  /** Aborted by stop: ends the redial loop and its sleeps. */
  readonly #life = new AbortController();
  #monitor: LoadMonitor | undefined;
  #connection: Connection | undefined;
  #heartbeat: HeartbeatSender | undefined;
  #stopping: Promise<void> | undefined;
  #started = false;
  /** Request handlers still running (their replies not yet handed to the connection). */
  readonly #inflight = new Set<Promise<unknown>>();

  constructor(options: WorkerOptions) {
    if (typeof options.master !== 'string' || options.master.length === 0) {
      throw new DinferError(DinferErrorCode.INVALID_ARGUMENT, 'worker needs the master address');
    }
    if (typeof options.transport?.dial !== 'function') {
      throw new DinferError(DinferErrorCode.INVALID_ARGUMENT, 'worker needs a transport');
    }
    const reconnect = options.reconnect === false ? false : resolveReconnectOptions(options.reconnect ?? {});
    const maxChunkBytes = options.maxChunkBytes ?? DEFAULT_MAX_CHUNK_BYTES;
    if (!Number.isSafeInteger(maxChunkBytes) || maxChunkBytes <= 0) {
      throw new DinferError(DinferErrorCode.INVALID_ARGUMENT, 'maxChunkBytes must be a positive integer');
    }
    this.#options = options;
    this.#reconnect = reconnect;
    const maxDeltaBytes = options.maxDeltaBytes ?? DEFAULT_MAX_DELTA_BYTES_WORKER;
    if (!Number.isSafeInteger(maxDeltaBytes) || maxDeltaBytes <= 0) {
      throw new DinferError(DinferErrorCode.INVALID_ARGUMENT, 'maxDeltaBytes must be a positive integer');
    }
    this.#logger = options.logger ?? silentLogger;
    this.#metrics = options.metrics ?? noopMetrics;
    this.#limits = options.tensorLimits ?? { maxBytes: DEFAULT_WORKER_TENSOR_BYTES };
    this.#queue = createWorkQueue(options.queueLimit ?? 64);
    this.store = options.store ?? memoryBlobStore();
    this.#blobs = new BlobReceiver({
      store: this.store,
      maxChunkBytes,
      maxDeltaBytes,
      logger: this.#logger,
      metrics: this.#metrics,
    });
    this.#host = new StageHost({
      store: this.store,
      queue: this.#queue,
      limits: this.#limits,
      logger: this.#logger,
      metrics: this.#metrics,
      monitor: () => this.#monitor,
      closing: () => this.#state === 'draining' || this.#stopping !== undefined,
      stopped: () => this.#stopping !== undefined,
    });
  }

  get state(): WorkerState {
    return this.#state;
  }

  stages(): StageKey[] {
    return this.#host.keys();
  }

  load(): WorkerLoad {
    if (this.#monitor === undefined) {
      return { cpu: 0, freeMemoryBytes: 0, queueLength: this.#queue.length, latencyMs: 0 };
    }
    return this.#monitor.sample();
  }

  onStateChange(listener: (state: WorkerState, previous: WorkerState) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #setState(state: WorkerState): void {
    const previous = this.#state;
    if (previous === state) return;
    this.#state = state;
    this.#logger.info({ state, previous, workerId: this.workerId }, 'worker state');
    for (const listener of this.#listeners) {
      try {
        listener(state, previous);
      } catch (error) {
        this.#logger.warn({ err: error }, 'state listener threw');
      }
    }
  }

  async start(signal?: AbortSignal): Promise<void> {
    if (this.#started) throw new DinferError(DinferErrorCode.INVALID_ARGUMENT, 'worker already started');
    this.#started = true;
    this.#setState('connecting');
    try {
      const capabilities = this.#options.capabilities ?? (await measureCapabilities());
      this.capabilities = capabilities;
      this.#monitor = createLoadMonitor({
        cores: capabilities.cores,
        memoryBytes: capabilities.memoryBytes,
        queueLength: () => this.#queue.length,
      });
      await this.#connectLoop(signal, true);
    } catch (error) {
      if (this.#state !== 'stopped') {
        await this.#teardown();
        this.#setState('stopped');
      }
      throw error;
    }
  }

  /**
   * Dials and joins until it works. With `initial`, non-transient errors and `signal`
   * reject (start); later (after a drop) every error is retried until stop.
   */
  async #connectLoop(signal: AbortSignal | undefined, initial: boolean): Promise<void> {
    const life = this.#life.signal;
    const attempt = (): Promise<void> => {
      if (life.aborted) throw notReady('the worker stopped');
      if (signal?.aborted) {
        throw new DinferError(DinferErrorCode.ABORTED, 'worker start aborted', { cause: signal.reason });
      }
      return this.#connectOnce(signal);
    };
    const reconnect = this.#reconnect;
    if (reconnect === false) return attempt();
    try {
      await retryWithBackoff(attempt, reconnect, {
        signal: signal === undefined ? life : AbortSignal.any([life, signal]),
        retryable: (error) => !initial || (isDinferError(error) && RETRYABLE.has(error.code)),
        onRetry: (error, delayMs, attempts) => {
          this.#logger.warn(
            {
              err: (error as Error).message,
              attempt: attempts,
              delayMs: Math.round(delayMs),
              master: this.#options.master,
            },
            'cannot join the master; retrying',
          );
          this.#metrics.increment('dinfer_worker_reconnects_total');
        },
      });
    } catch (error) {
      if (life.aborted) throw notReady('the worker stopped');
      if (signal?.aborted) {
        throw new DinferError(DinferErrorCode.ABORTED, 'worker start aborted', { cause: signal.reason });
      }
      throw error;
    }
  }

  async #connectOnce(signal: AbortSignal | undefined): Promise<void> {
    const connection = await dialConnection(this.#options.transport, this.#options.master, {
      token: this.#options.token,
      signal,
      logger: this.#logger,
      metrics: this.#metrics,
    });
    if (this.#life.signal.aborted) {
      await connection.close();
      throw notReady('the worker stopped');
    }
    connection.onRequest((request, context) => this.#track(this.#handle(request, context)));
    connection.onMessage((message) => {
      this.#logger.debug({ type: message.header.type }, 'ignored one-way message from the master');
    });
    try {
      const capabilities = this.capabilities!;
      const join: ProtocolMessage = {
        type: 'join',
        name: this.#options.name ?? defaultWorkerName(),
        capabilities,
        blobs: this.store.list(),
        heartbeats: this.#options.heartbeats !== undefined,
      };
      const answer = await connection.request(messageEnvelope(join), {
        signal,
        timeoutMs: this.#options.joinTimeoutMs ?? 30_000,
      });
      const joined = parseMessage(answer.header, 'joined');
      this.workerId = joined.workerId;
      this.#connection = connection;
      this.#logger.info({ workerId: joined.workerId, master: this.#options.master }, 'joined the master');
      await this.#startHeartbeat(
        connection,
        joined.workerId,
        joined.heartbeatPort,
        joined.heartbeatIntervalMs,
      );
      void connection.closed.then((error) => this.#onDisconnect(connection, error));
      this.#setState('ready');
    } catch (error) {
      await connection.close();
      throw error;
    }
  }

  async #startHeartbeat(
    connection: Connection,
    workerId: string,
    port: number,
    intervalMs: number,
  ): Promise<void> {
    await this.#stopHeartbeat();
    const heartbeats = this.#options.heartbeats;
    if (heartbeats === undefined || port === 0 || intervalMs < 1) return;
    const host = this.#options.heartbeatHost ?? addressHost(this.#options.master);
    if (host === undefined) {
      this.#logger.warn({ master: this.#options.master }, 'no heartbeat host: set heartbeatHost');
      return;
    }
    const session = connection.session;
    this.#heartbeat = heartbeats({
      host,
      port,
      key: session?.authenticated ? session.key : undefined,
      workerId,
      intervalMs,
      getLoad: () => this.load(),
      logger: this.#logger,
    });
    this.#heartbeat.start();
  }

  async #stopHeartbeat(): Promise<void> {
    const heartbeat = this.#heartbeat;
    this.#heartbeat = undefined;
    await heartbeat?.stop();
  }

  #onDisconnect(connection: Connection, error: DinferError | undefined): void {
    if (this.#connection !== connection) return;
    this.#connection = undefined;
    void this.#stopHeartbeat();
    // Stages belong to the session with the master; a (re)joined master loads what it wants.
    this.#host.unloadAll();
    if (this.#stopping !== undefined || this.#life.signal.aborted) return;
    this.#logger.warn({ err: error?.message, master: this.#options.master }, 'lost the master');
    if (this.#reconnect === false) {
      void this.stop();
      return;
    }
    this.#setState('connecting');
    this.#connectLoop(undefined, false).catch((failure: unknown) => {
      if (!this.#life.signal.aborted) this.#logger.error({ err: failure }, 'reconnect loop ended');
    });
  }

  #track(handling: Promise<Envelope>): Promise<Envelope> {
    const settled = handling.catch(() => undefined);
    this.#inflight.add(settled);
    void settled.then(() => this.#inflight.delete(settled));
    return handling;
  }

  /** Resolves once every running handler is done and its reply has been handed to the connection. */
  async #settleHandlers(): Promise<void> {
    while (this.#inflight.size > 0) await Promise.all([...this.#inflight]);
    await platform.yieldToEventLoop();
  }

  async #handle(request: Envelope, context: RequestContext): Promise<Envelope> {
    const message = parseMessageHeader(request.header);
    switch (message.type) {
      case 'blob.status':
        return messageEnvelope(this.#blobs.status(message));
      case 'blob.chunk':
        return messageEnvelope(await this.#blobs.chunk(message, request.attachments));
      case 'blob.delta':
        return messageEnvelope(await this.#blobs.delta(message, request.attachments));
      case 'stage.load':
        return messageEnvelope(await this.#host.load(message, context.connection));
      case 'stage.unload': {
        const stage = this.#host.get(message.key);
        if (stage !== undefined) this.#host.unload(stage);
        return messageEnvelope({ type: 'ok' });
      }
      case 'infer':
        return this.#host.infer(message, request.attachments, context);
      case 'ping':
        return messageEnvelope({ type: 'pong', sentAt: message.sentAt, load: this.load() });
      default:
        throw new DinferError(DinferErrorCode.PROTOCOL, `a worker does not answer ${message.type} requests`);
    }
  }

  stop(options: WorkerStopOptions = {}): Promise<void> {
    this.#stopping ??= this.#stop(options.drain === true);
    return this.#stopping;
  }

  async #stop(drain: boolean): Promise<void> {
    const connection = this.#connection;
    if (drain && connection?.isOpen && this.#state === 'ready') {
      this.#setState('draining');
      this.#queue.close();
      try {
        await connection.send(messageEnvelope({ type: 'drain', reason: 'worker shutting down' }));
      } catch (error) {
        this.#logger.warn({ err: (error as Error).message }, 'could not send drain');
      }
      await this.#queue.idle();
      await this.#settleHandlers();
    }
    this.#life.abort();
    await this.#teardown();
    this.#setState('stopped');
  }

  async #teardown(): Promise<void> {
    this.#life.abort();
    this.#queue.close({ reject: true });
    await this.#queue.idle();
    await this.#stopHeartbeat();
    const connection = this.#connection;
    this.#connection = undefined;
    await connection?.close();
    await this.#host.settleLoads();
    this.#host.unloadAll();
    // What was being received stays resumable by the next worker on this cache.
    await this.store.close();
  }
}

/**
 * Creates a worker runtime (not started). Its blob store is read right away, so cached blobs
 * are known before the first `join`.
 *
 * @throws DinferError INVALID_ARGUMENT for bad options.
 */
export function createWorker(options: WorkerOptions): DinferWorker {
  return new Worker(options);
}
