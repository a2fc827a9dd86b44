/**
 * Cluster membership: workers join over the transport, are watched by heartbeats and health
 * pings, and are removed when their connection closes, their heartbeats stop or pings fail.
 *
 * @module
 */

import type { Connection } from '../connection/connection.js';
import { listenForConnections } from '../connection/listen-for-connections.js';
import { DinferError, DinferErrorCode } from '../errors.js';
import type { HeartbeatReceiver } from '../heartbeats.js';
import { messageEnvelope, parseMessage } from '../protocol/messages.js';
import type { Listener } from '../transport.js';
import { type CoordinatorContext, errorMessage } from './coordinator-context.js';
import type { CoordinatorOptions } from './coordinator-types.js';
import { RemoteWorker } from './remote-worker.js';

/**
 * The metrics with one series per worker (label `worker`): removed with their worker, so the
 * exposition does not keep the workers that left.
 */
export const PER_WORKER_METRICS: readonly string[] = [
  'dinfer_worker_cpu_ratio',
  'dinfer_worker_free_memory_bytes',
  'dinfer_worker_queue_length',
  'dinfer_worker_breaker_open',
];

/** What membership tells the rest of the coordinator. */
export interface MembershipHooks {
  /** A worker joined (called on a microtask after its `joined` reply was produced). */
  onJoined(worker: RemoteWorker): void;
  /** A worker left or was removed, or started draining. */
  onChanged(): void;
}

/** The workers of a cluster and the machinery that notices them come and go. */
export class Membership {
  /** Every worker that joined and was not removed, by id. */
  readonly workers = new Map<string, RemoteWorker>();
  readonly #ctx: CoordinatorContext;
  readonly #hooks: MembershipHooks;
  #listener: Listener | undefined;
  #heartbeats: HeartbeatReceiver | undefined;
  #pingTimer: ReturnType<typeof setInterval> | undefined;
  #nextWorker = 1;

  constructor(ctx: CoordinatorContext, hooks: MembershipHooks) {
    this.#ctx = ctx;
    this.#hooks = hooks;
  }

  /** Listens for workers, starts the heartbeat receiver and the ping loop. */
  async start(): Promise<{ address: string; heartbeatPort: number }> {
    const { options, log } = this.#ctx;
    this.#listener = await listenForConnections(options.transport, options.listen, {
      token: options.token,
      onConnection: (connection) => this.#accept(connection),
      logger: log,
      metrics: this.#ctx.metrics,
    });
    const hb = options.heartbeat;
    let heartbeatPort = 0;
    // Heartbeats go over UDP beside an IP listener (same port number by default); a
    // listener without a host:port address (e.g. in-memory) gets none unless a port is given.
    const listenPort = Number(this.#listener.address.slice(this.#listener.address.lastIndexOf(':') + 1));
    const port = hb?.port ?? (Number.isInteger(listenPort) ? listenPort : undefined);
    if (hb?.receiver !== undefined && hb.enabled !== false && port !== undefined) {
      this.#heartbeats = await hb.receiver({
        host: hb?.host ?? hostOf(this.#listener.address),
        port,
        timeoutMs: hb.timeoutMs ?? 30_000,
        logger: log,
        metrics: this.#ctx.metrics,
        onBeat: (workerId, load) => {
          const worker = this.workers.get(workerId);
          if (!worker) return;
          worker.load = load;
          worker.lastHeartbeatAt = Date.now();
          this.#ctx.metrics.set('dinfer_worker_cpu_ratio', { worker: workerId }, load.cpu);
          this.#ctx.metrics.set(
            'dinfer_worker_free_memory_bytes',
            { worker: workerId },
            load.freeMemoryBytes,
          );
          this.#ctx.metrics.set('dinfer_worker_queue_length', { worker: workerId }, load.queueLength);
        },
        onTimeout: (workerId) => {
          const worker = this.workers.get(workerId);
          if (worker) this.remove(worker, 'heartbeat timeout');
        },
      });
      heartbeatPort = this.#heartbeats.port;
    }
    const pingEvery = options.pingIntervalMs ?? 5000;
    if (pingEvery > 0) {
      this.#pingTimer = setInterval(() => this.#pingAll(), pingEvery);
      (this.#pingTimer as { unref?: () => void }).unref?.();
    }
    log.info({ address: this.#listener.address, heartbeatPort }, 'coordinator listening');
    return { address: this.#listener.address, heartbeatPort };
  }

  /** Closes every worker connection, the listener and the heartbeat receiver. */
  async stop(): Promise<void> {
    if (this.#pingTimer) clearInterval(this.#pingTimer);
    await Promise.allSettled([...this.workers.values()].map((w) => w.connection.close()));
    this.workers.clear();
    await this.#listener?.close();
    await this.#heartbeats?.stop();
  }

  /** Workers that can take placements: ready and connected. */
  live(): RemoteWorker[] {
    return [...this.workers.values()].filter((w) => w.state === 'ready' && w.connection.isOpen);
  }

  /** Removes a worker from the cluster (idempotent) and closes its connection. */
  remove(worker: RemoteWorker, reason: string): void {
    if (worker.state === 'gone' || this.#ctx.stopped) return;
    worker.state = 'gone';
    this.workers.delete(worker.id);
    this.#heartbeats?.forget(worker.id);
    void worker.connection.close();
    this.#ctx.log.warn({ worker: worker.id, name: worker.name, reason }, 'worker removed');
    this.#ctx.emit({ type: 'worker.left', workerId: worker.id, reason });
    this.#ctx.metrics.set('ai_active_workers', {}, this.workers.size);
    for (const name of PER_WORKER_METRICS) this.#ctx.metrics.remove?.(name, { worker: worker.id });
    if (!this.#ctx.stopped) this.#hooks.onChanged();
  }

  #accept(connection: Connection): void {
    let worker: RemoteWorker | undefined;
    const { log, metrics } = this.#ctx;
    connection.onRequest(async (request) => {
      if (worker) {
        throw new DinferError(
          DinferErrorCode.PROTOCOL,
          `unexpected ${request.header.type} request from a worker`,
        );
      }
      const join = parseMessage(request.header, 'join');
      // An ordinal to read, a random part so that ids cannot be guessed ahead of a join.
      const id = `w${this.#nextWorker++}-${randomHex(4)}`;
      const joined = new RemoteWorker({
        id,
        name: join.name,
        connection,
        capabilities: join.capabilities,
        blobs: join.blobs,
        breaker: this.#ctx.options.breaker,
      });
      worker = joined;
      this.workers.set(id, joined);
      // Only packets signed with this connection's session key speak for this worker; a worker
      // that sends no heartbeats (none configured, or a browser) is watched by pings alone.
      const session = connection.session;
      if (join.heartbeats === true) {
        this.#heartbeats?.watch(id, session?.authenticated ? session.key : 'unsigned');
      }
      log.info(
        { worker: id, name: join.name, address: connection.remoteAddress, ...join.capabilities },
        'worker joined',
      );
      this.#ctx.emit({ type: 'worker.joined', workerId: id, name: join.name });
      metrics.set('ai_active_workers', {}, this.workers.size);
      queueMicrotask(() => this.#hooks.onJoined(joined));
      return {
        header: {
          type: 'joined',
          workerId: id,
          heartbeatPort: this.#heartbeats?.port ?? 0,
          heartbeatIntervalMs: heartbeatIntervalMs(this.#ctx.options.heartbeat),
        },
        attachments: [],
      };
    });
    connection.onMessage((msg) => {
      if (!worker || msg.header.type !== 'drain') return;
      log.info({ worker: worker.id, reason: msg.header.reason }, 'worker draining');
      worker.state = 'draining';
      this.#hooks.onChanged();
    });
    void connection.closed.then((error) => {
      if (worker) this.remove(worker, error ? `connection closed: ${error.message}` : 'connection closed');
    });
  }

  #pingAll(): void {
    const maxMissed = this.#ctx.options.maxMissedPings ?? 3;
    for (const worker of this.workers.values()) {
      if (worker.state === 'gone') continue;
      worker.connection
        .request(messageEnvelope({ type: 'ping', sentAt: Date.now() }), {
          timeoutMs: this.#ctx.options.pingIntervalMs ?? 5000,
        })
        .then((reply) => {
          const pong = parseMessage(reply.header, 'pong');
          worker.missedPings = 0;
          worker.load = pong.load;
        })
        .catch((error: unknown) => {
          worker.missedPings++;
          this.#ctx.log.warn(
            { worker: worker.id, missed: worker.missedPings, err: errorMessage(error) },
            'health ping failed',
          );
          if (worker.missedPings >= maxMissed)
            this.remove(worker, `${worker.missedPings} health pings failed`);
        });
    }
  }
}

/**
 * The interval workers are asked to beat at: the configured one, else 2000 ms but at most a
 * third of the timeout, so a short timeout (e.g. 1500 ms) does not remove healthy workers.
 */
function heartbeatIntervalMs(hb: CoordinatorOptions['heartbeat']): number {
  if (hb?.intervalMs !== undefined) return hb.intervalMs;
  return Math.max(1, Math.min(2000, Math.floor((hb?.timeoutMs ?? 30_000) / 3)));
}

function randomHex(bytes: number): string {
  return Array.from(globalThis.crypto.getRandomValues(new Uint8Array(bytes)), (b) =>
    b.toString(16).padStart(2, '0'),
  ).join('');
}

function hostOf(address: string): string {
  const i = address.lastIndexOf(':');
  const host = i < 0 ? address : address.slice(0, i);
  return host.replace(/^\[|\]$/g, '') || '0.0.0.0';
}
