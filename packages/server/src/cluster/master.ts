/**
 * A master process: loads a model, plans its cuts, coordinates workers and serves HTTP.
 *
 * @module
 */
import {
  analyzeModel,
  type BackendInfo,
  type BackendName,
  type Coordinator,
  type CoordinatorEvent,
  createCoordinator,
  initBackend,
  type Logger,
  loadLayersModel,
  planCuts,
  profileLayers,
} from '@dinfer/core';
import type { FastifyInstance } from 'fastify';
import { createHttpApi } from '../http/api.js';
import { readLabels } from './labels.js';
import { createScheduler, type SchedulerKind } from './scheduler-factory.js';
import { createTransport, type TransportKind } from './transport-factory.js';

/** Options of {@link startMaster}. */
export interface MasterOptions {
  /** model.json path or http(s) URL. */
  readonly model: string;
  /** Name clients use. Default: the model's own name. */
  readonly name?: string | undefined;
  readonly version?: string | undefined;
  /** Labels file (JSON array or one per line) for top-k answers. */
  readonly labels?: string | undefined;
  /** Pipeline stages to plan for. Default 2. Ignored when `cuts` is given. */
  readonly stages?: number | undefined;
  /** Explicit cut indices. */
  readonly cuts?: readonly number[] | undefined;
  /** Profile layers on this machine for planning (else FLOPs estimates). Default true. */
  readonly profile?: boolean | undefined;
  readonly httpHost?: string | undefined;
  /** Default 8080; 0 picks a free port. */
  readonly httpPort?: number | undefined;
  readonly clusterHost?: string | undefined;
  /** Default 7070; 0 picks a free port. */
  readonly clusterPort?: number | undefined;
  readonly transport?: TransportKind | undefined;
  readonly token?: string | undefined;
  readonly scheduler?: SchedulerKind | undefined;
  /** Workers to wait for before placing stages. Default: one per stage. */
  readonly minWorkers?: number | undefined;
  /** Serve at once, running stages on the master until workers come. Default false. */
  readonly startDegraded?: boolean | undefined;
  readonly heartbeatTimeoutMs?: number | undefined;
  readonly heartbeatIntervalMs?: number | undefined;
  readonly backend?: BackendName | undefined;
  /** Deadline of each HTTP request in ms. Default 120 000. */
  readonly requestTimeoutMs?: number | undefined;
  readonly logger?: Logger | undefined;
  readonly onEvent?: ((event: CoordinatorEvent) => void) | undefined;
  /** Called with progress messages while loading and planning. */
  readonly onStep?: ((step: string) => void) | undefined;
}

/** A running master. */
export interface MasterHandle {
  readonly coordinator: Coordinator;
  readonly http: FastifyInstance;
  /** Base URL of the HTTP API, e.g. `http://127.0.0.1:8080`. */
  readonly httpUrl: string;
  /** Address workers dial. */
  readonly clusterAddress: string;
  readonly backend: BackendInfo;
  readonly modelName: string;
  readonly cuts: readonly number[];
  /** Resolves once every stage is served by a worker (or at once with `startDegraded`). */
  readonly ready: Promise<void>;
  stop(): Promise<void>;
}

function urlHost(host: string): string {
  if (host === '0.0.0.0' || host === '::' || host === '') return '127.0.0.1';
  return host.includes(':') ? `[${host}]` : host;
}

/** Starts a master. The HTTP API answers at once (`/v2/health/ready` is 503 until ready). */
export async function startMaster(options: MasterOptions): Promise<MasterHandle> {
  const step = options.onStep ?? (() => {});
  const backend = await initBackend({ backend: options.backend });
  step(`loading ${options.model}`);
  const model = await loadLayersModel(options.model);
  const name = options.name ?? model.name;
  let cuts = options.cuts;
  let stageMs: readonly number[] | undefined;
  const analysis = analyzeModel(model);
  if (!cuts) {
    const profile = options.profile ?? true;
    step(
      profile ? `profiling ${analysis.layers.length} layers on ${backend.name}` : 'estimating layer costs',
    );
    const layerCostsMs = profile ? await profileLayers(model, { runs: 3, warmup: 1 }) : undefined;
    step(`planning ${options.stages ?? 2} stages`);
    const plan = planCuts(analysis, { stages: options.stages ?? 2, layerCostsMs });
    cuts = plan.cuts;
    stageMs = plan.stages.map((s) => s.estimatedMs);
  }
  const labels = options.labels ? await readLabels(options.labels) : undefined;
  const token = options.token;
  const transport = createTransport(options.transport ?? 'tcp', { token, logger: options.logger });
  const clusterHost = options.clusterHost ?? '0.0.0.0';
  const coordinator = createCoordinator({
    transport,
    listen: `${clusterHost.includes(':') ? `[${clusterHost}]` : clusterHost}:${options.clusterPort ?? 7070}`,
    token,
    scheduler: createScheduler(options.scheduler ?? 'round-robin'),
    heartbeat: { timeoutMs: options.heartbeatTimeoutMs, intervalMs: options.heartbeatIntervalMs },
    startDegraded: options.startDegraded,
    logger: options.logger,
    onEvent: options.onEvent,
  });
  const { address } = await coordinator.start();
  step(`partitioning at cuts [${cuts.join(', ')}] and preparing shards`);
  const deployment = await coordinator.deploy({
    name,
    version: options.version,
    model,
    cuts,
    labels,
    stageMs,
  });
  const http = createHttpApi(coordinator, {
    requestTimeoutMs: options.requestTimeoutMs ?? 120_000,
    serverName: 'dinfer',
  });
  const httpHost = options.httpHost ?? '0.0.0.0';
  await http.listen({ host: httpHost, port: options.httpPort ?? 8080 });
  const bound = http.server.address();
  const port = typeof bound === 'object' && bound ? bound.port : (options.httpPort ?? 8080);
  const ready = coordinator.waitUntilReady({ minWorkers: options.minWorkers ?? deployment.stages.length });
  ready.catch(() => {});
  return {
    coordinator,
    http,
    httpUrl: `http://${urlHost(httpHost)}:${port}`,
    clusterAddress: address,
    backend,
    modelName: name,
    cuts,
    ready,
    async stop() {
      await http.close();
      await coordinator.stop();
    },
  };
}
