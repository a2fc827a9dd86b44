/**
 * The master side of heartbeats: a UDP socket that authenticates beats, drops stale and
 * replayed ones, and reports workers that fall silent.
 *
 * Authentication: a worker is watched with the session key of its authenticated connection
 * ({@link HeartbeatReceiver.watch}); only packets signed with that key speak for it, so even
 * a peer that holds the cluster token cannot forge another worker's beats. Packets for ids
 * that are not watched are refused.
 *
 * Replay protection: the receiver remembers, per worker id, the run (`boot`, `bootAt`) and the
 * highest `seq` it accepted. A packet of the same run must carry a higher `seq`; a packet of
 * another run is accepted (as a restart) only when its `bootAt` is not older than the known
 * run's, so a captured packet of an earlier run cannot be replayed. Packets whose `sentAt`
 * differs from the receiver clock by more than `maxSkewMs` are stale, which bounds how long the
 * receiver must remember a worker it no longer watches.
 *
 * @module
 */
import dgram from 'node:dgram';
import { isIP } from 'node:net';
import { performance } from 'node:perf_hooks';
import { DinferError, DinferErrorCode } from '../../errors.js';
import type { HeartbeatKey, HeartbeatReceiver, HeartbeatReceiverOptions } from '../../heartbeats.js';
import { silentLogger } from '../../logger.js';
import { noopMetrics } from '../../metrics.js';
import { decodeHeartbeat, type HeartbeatPayload, type HeartbeatRejectReason } from './heartbeat-packet.js';

function sameKey(a: HeartbeatKey | 'unsigned', b: HeartbeatKey | 'unsigned'): boolean {
  if (typeof a === 'string' || typeof b === 'string') return a === b;
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

/** Default silence after which a watched worker times out, in ms. */
export const DEFAULT_HEARTBEAT_TIMEOUT_MS = 30_000;

/** Default tolerated difference between a packet's `sentAt` and the receiver clock, in ms. */
export const DEFAULT_HEARTBEAT_MAX_SKEW_MS = 60_000;

/** Default cap on the number of worker ids the receiver remembers at once. */
export const DEFAULT_HEARTBEAT_MAX_WORKERS = 10_000;

interface WorkerRecord {
  boot: string;
  bootAt: number;
  seq: number;
  /** Epoch ms of the last accepted beat; cleared by forget(). */
  lastSeen: number | undefined;
  /** Monotonic ms of the last accepted beat (for timeouts and pruning). */
  lastSeenMono: number;
}

interface WatchRecord {
  /** Monotonic ms from which silence is counted when no beat has arrived. */
  since: number;
  timedOut: boolean;
  /** How this worker's beats authenticate. */
  key: HeartbeatKey | 'unsigned';
}

function positive(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value <= 0) {
    throw new DinferError(
      DinferErrorCode.INVALID_ARGUMENT,
      `heartbeat ${name} ${value} must be a positive number`,
    );
  }
  return value;
}

/**
 * Binds a heartbeat receiver. Bad datagrams (for workers not watched, unsigned or forged for
 * workers watched with a key, malformed, too large, stale, replayed) are counted in {@link HeartbeatReceiver.rejected}, logged at
 * debug level and otherwise ignored; nothing a peer sends can make it throw.
 *
 * @throws DinferError INVALID_ARGUMENT for invalid options, TRANSPORT_CONNECT when binding fails.
 */
export async function createHeartbeatReceiver(options: HeartbeatReceiverOptions): Promise<HeartbeatReceiver> {
  const host = options.host ?? '0.0.0.0';
  if (!Number.isInteger(options.port) || options.port < 0 || options.port > 65535) {
    throw new DinferError(
      DinferErrorCode.INVALID_ARGUMENT,
      `heartbeat port ${options.port} is not in 0..65535`,
    );
  }
  const timeoutMs = positive('timeoutMs', options.timeoutMs, DEFAULT_HEARTBEAT_TIMEOUT_MS);
  const checkIntervalMs = positive('checkIntervalMs', options.checkIntervalMs, Math.min(1000, timeoutMs / 4));
  const maxSkewMs = positive('maxSkewMs', options.maxSkewMs, DEFAULT_HEARTBEAT_MAX_SKEW_MS);
  const maxWorkers = positive('maxWorkers', options.maxWorkers, DEFAULT_HEARTBEAT_MAX_WORKERS);
  const logger = options.logger ?? silentLogger;
  const metrics = options.metrics ?? noopMetrics;

  const workers = new Map<string, WorkerRecord>();
  const watched = new Map<string, WatchRecord>();
  let rejected = 0;
  let accepted = 0;

  const reject = (
    reason: HeartbeatRejectReason,
    message: string,
    from: dgram.RemoteInfo,
    workerId?: string,
  ) => {
    rejected++;
    metrics.increment('dinfer_heartbeat_received_total', { result: reason });
    logger.debug({ reason, from: `${from.address}:${from.port}`, workerId }, `heartbeat refused: ${message}`);
  };

  /** Applies freshness and replay rules; returns the reason to refuse, or the restart flag. */
  const admit = (
    p: HeartbeatPayload,
    now: number,
  ): { reason: HeartbeatRejectReason; message: string } | boolean => {
    if (Math.abs(p.sentAt - now) > maxSkewMs) {
      return {
        reason: 'stale',
        message: `sentAt is ${Math.round(now - p.sentAt)} ms from the receiver clock`,
      };
    }
    const known = workers.get(p.workerId);
    if (known === undefined) {
      if (workers.size >= maxWorkers)
        return { reason: 'capacity', message: `already tracking ${maxWorkers} workers` };
      return false;
    }
    if (p.boot === known.boot) {
      if (p.seq <= known.seq)
        return { reason: 'replayed', message: `seq ${p.seq} <= last accepted ${known.seq}` };
      return false;
    }
    if (p.bootAt < known.bootAt) {
      return {
        reason: 'replayed',
        message: `run started at ${p.bootAt} is older than the known run (${known.bootAt})`,
      };
    }
    return true;
  };

  const onMessage = (packet: Buffer, from: dgram.RemoteInfo): void => {
    const decoded = decodeHeartbeat(packet, (workerId) => watched.get(workerId)?.key);
    if (!decoded.ok) {
      reject(decoded.reason, decoded.message, from);
      return;
    }
    const p = decoded.payload;
    const receivedAt = Date.now();
    const verdict = admit(p, receivedAt);
    if (typeof verdict === 'object') {
      reject(verdict.reason, verdict.message, from, p.workerId);
      return;
    }
    const mono = performance.now();
    const record = workers.get(p.workerId);
    if (record === undefined) {
      workers.set(p.workerId, {
        boot: p.boot,
        bootAt: p.bootAt,
        seq: p.seq,
        lastSeen: receivedAt,
        lastSeenMono: mono,
      });
    } else {
      record.boot = p.boot;
      record.bootAt = p.bootAt;
      record.seq = p.seq;
      record.lastSeen = receivedAt;
      record.lastSeenMono = mono;
    }
    const watch = watched.get(p.workerId);
    if (watch !== undefined) watch.timedOut = false;
    accepted++;
    metrics.increment('dinfer_heartbeat_received_total', { result: 'accepted' });
    if (verdict) logger.info({ workerId: p.workerId, boot: p.boot }, 'heartbeat: worker restarted');
    try {
      options.onBeat(p.workerId, p.load, {
        address: from.address,
        port: from.port,
        seq: p.seq,
        sentAt: p.sentAt,
        receivedAt,
        boot: p.boot,
        restarted: verdict,
        signed: decoded.signed,
      });
    } catch (error) {
      logger.error({ workerId: p.workerId, err: error }, 'heartbeat onBeat handler threw');
    }
  };

  const check = (): void => {
    const now = performance.now();
    for (const [workerId, watch] of watched) {
      if (watch.timedOut) continue;
      const seen = workers.get(workerId);
      const from = seen?.lastSeen !== undefined ? Math.max(seen.lastSeenMono, watch.since) : watch.since;
      if (now - from < timeoutMs) continue;
      watch.timedOut = true;
      metrics.increment('dinfer_heartbeat_timeouts_total');
      logger.warn({ workerId, silentMs: Math.round(now - from) }, 'heartbeat: worker timed out');
      try {
        options.onTimeout(workerId);
      } catch (error) {
        logger.error({ workerId, err: error }, 'heartbeat onTimeout handler threw');
      }
    }
    // Unwatched records only guard against replays, which the skew check covers after maxSkewMs.
    for (const [workerId, record] of workers) {
      if (!watched.has(workerId) && now - record.lastSeenMono > 2 * maxSkewMs) workers.delete(workerId);
    }
  };

  const socket = dgram.createSocket(isIP(host) === 6 ? 'udp6' : 'udp4');
  socket.on('message', onMessage);
  await new Promise<void>((resolve, fail) => {
    const onError = (error: Error) => {
      socket.close();
      fail(
        new DinferError(
          DinferErrorCode.TRANSPORT_CONNECT,
          `heartbeat receiver cannot bind ${host}:${options.port}`,
          {
            cause: error,
            details: { host, port: options.port },
          },
        ),
      );
    };
    socket.once('error', onError);
    socket.bind(options.port, host, () => {
      socket.off('error', onError);
      resolve();
    });
  });
  socket.on('error', (error) => logger.warn({ err: error }, 'heartbeat receiver socket error'));
  const port = socket.address().port;
  const timer = setInterval(check, checkIntervalMs);
  timer.unref();
  let stopped: Promise<void> | undefined;
  logger.debug({ host, port }, 'heartbeat receiver listening');

  return {
    port,
    watch(workerId, key) {
      const current = watched.get(workerId);
      if (current !== undefined && sameKey(current.key, key)) return;
      // A new session: its sender starts a new run, and nothing of the old one carries over.
      workers.delete(workerId);
      watched.set(workerId, { since: performance.now(), timedOut: false, key });
    },
    forget(workerId) {
      watched.delete(workerId);
      workers.delete(workerId);
    },
    lastSeen(workerId) {
      return workers.get(workerId)?.lastSeen;
    },
    get rejected() {
      return rejected;
    },
    get accepted() {
      return accepted;
    },
    stop() {
      stopped ??= new Promise<void>((resolve) => {
        clearInterval(timer);
        socket.close(() => resolve());
      });
      return stopped;
    },
  };
}
