/**
 * The body of `GET /api/status`: the cluster (workers and stages, from the coordinator's
 * status), the last minute of requests (from the {@link RequestWindow}), and cache figures
 * when the service exposes `stats()`.
 *
 * @module
 */
import type { ClusterStatus, InferenceService, StageStatus, WorkerStatus } from '@dinfer/core';
import type { WindowSnapshot } from './request-window.js';

/** One worker in {@link StatusReport}. */
export interface StatusWorker {
  readonly id: string;
  readonly name: string;
  readonly address: string;
  readonly backend: string;
  readonly cores: number;
  /** Stage keys loaded on the worker (`model@version/index`). */
  readonly stages: readonly string[];
  readonly state: string;
  readonly breaker: WorkerStatus['breaker'];
  readonly heartbeatAgeMs: number | null;
  /** CPU use 0-1 from the last heartbeat. */
  readonly cpu: number | null;
  readonly freeMemoryBytes: number | null;
  readonly queueLength: number | null;
  readonly inflight: number;
  readonly completed: number;
  readonly failed: number;
}

/** One pipeline stage in {@link StatusReport}. */
export interface StatusStage {
  readonly model: string;
  readonly version: string;
  readonly index: number;
  /** Layer index range `[from, to)` of the full model. */
  readonly layers: readonly [number, number];
  readonly layerCount: number;
  readonly weightBytes: number;
  /** Ids of the workers serving the stage. */
  readonly replicas: readonly string[];
  readonly degraded: boolean;
}

/** The body of `GET /api/status`. */
export interface StatusReport {
  /** When the report was made (ISO 8601). */
  readonly time: string;
  readonly uptimeSeconds: number;
  readonly live: boolean;
  readonly ready: boolean;
  /** True while the master runs a stage itself. */
  readonly degraded: boolean;
  readonly models: readonly { readonly name: string; readonly version: string }[];
  /** Empty when the service is not a cluster (e.g. a local service). */
  readonly workers: readonly StatusWorker[];
  readonly stages: readonly StatusStage[];
  /** The last minute of inference requests. */
  readonly requests: WindowSnapshot;
  /** What the service's `stats()` returned (e.g. result cache hits and misses), or null. */
  readonly cache: Record<string, unknown> | null;
}

/** What {@link buildStatusReport} reads. */
export interface StatusSources {
  readonly service: InferenceService;
  readonly requests: WindowSnapshot;
  readonly cluster?: ClusterStatus | undefined;
  readonly startedAt: number;
  readonly now?: number | undefined;
}

function worker(w: WorkerStatus): StatusWorker {
  return {
    id: w.id,
    name: w.name,
    address: w.address,
    backend: w.backend,
    cores: w.cores,
    stages: w.stages,
    state: w.state,
    breaker: w.breaker,
    heartbeatAgeMs: w.heartbeatAgeMs,
    cpu: w.cpu,
    freeMemoryBytes: w.freeMemoryBytes,
    queueLength: w.queueLength,
    inflight: w.inflight,
    completed: w.completed,
    failed: w.failed,
  };
}

function stage(s: StageStatus): StatusStage {
  return {
    model: s.model,
    version: s.version,
    index: s.index,
    layers: s.layers,
    layerCount: s.layers[1] - s.layers[0],
    weightBytes: s.weightBytes,
    replicas: s.replicas,
    degraded: s.degraded,
  };
}

/** `service.stats()` when the service (e.g. a caching decorator) has one returning an object. */
export function serviceStats(service: InferenceService): Record<string, unknown> | null {
  const stats = (service as { stats?: unknown }).stats;
  if (typeof stats !== 'function') return null;
  const value: unknown = stats.call(service);
  return value !== null && typeof value === 'object' && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : null;
}

/** Assembles the `GET /api/status` body. */
export function buildStatusReport(sources: StatusSources): StatusReport {
  const now = sources.now ?? Date.now();
  const health = sources.service.health();
  const cluster = sources.cluster;
  return {
    time: new Date(now).toISOString(),
    uptimeSeconds: Math.max(0, (now - sources.startedAt) / 1000),
    live: health.live,
    ready: health.ready,
    degraded: health.degraded || cluster?.degraded === true,
    models: sources.service.models().map((m) => ({ name: m.name, version: m.version })),
    workers: cluster?.workers.map(worker) ?? [],
    stages: cluster?.stages.map(stage) ?? [],
    requests: sources.requests,
    cache: serviceStats(sources.service),
  };
}
