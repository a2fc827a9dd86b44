/**
 * A master process: opens a model's artifacts (or every model of a repository), coordinates
 * workers, plans the model's cuts for them and serves HTTP.
 *
 * A local `model.json` is served from its artifacts: the master never builds the model nor
 * holds its weights (it reads the topology, profiles it one layer at a time, and ships each
 * stage's weights from the shard files), so a model larger than the master's memory serves.
 * An `http(s)` model is loaded into memory as a TF.js model.
 *
 * @module
 */
import {
  analyzeModel,
  analyzeModelJson,
  type BackendInfo,
  type BackendName,
  batchingService,
  type CachingService,
  type Coordinator,
  type CoordinatorEvent,
  cachingService,
  createCoordinator,
  type Deployment,
  type DeploymentSpec,
  DinferError,
  DinferErrorCode,
  type InferenceService,
  initBackend,
  isHttpSource,
  type Logger,
  loadLayersModel,
  openModelArtifacts,
  profileLayers,
  profileTopology,
  type ServedModel,
} from '@dinfer/core';
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import { createHttpApi } from '../http/api.js';
import { type PrometheusMetrics, prometheusMetrics } from '../metrics/prometheus-metrics.js';
import type { PreprocessConfig } from '../preprocess/config.js';
import { createModelRepository, type ModelRepository } from '../repository/model-repository.js';
import { type RepositoryPoller, startRepositoryPoller } from '../repository/repository-poller.js';
import { readLabels } from './labels.js';
import { createScheduler, type SchedulerKind } from './scheduler-factory.js';
import { createTransport, type TransportKind } from './transport-factory.js';

/** Options of {@link startMaster}. */
export interface MasterOptions {
  /** model.json path or http(s) URL. Give this or `modelRepo`. */
  readonly model?: string | undefined;
  /**
   * A model repository (`<repo>/<model>/<version>/model.json`): serves the newest version of
   * every model in it, each planned on its own (per-version `config.json` overrides).
   * `name`, `version`, `labels` and `cuts` apply only to `model`.
   */
  readonly modelRepo?: string | undefined;
  /** Scan `modelRepo` this often (seconds) and hot-swap to new versions. Default: never. */
  readonly pollRepoSeconds?: number | undefined;
  /** Name clients use. Default: the model's own name. */
  readonly name?: string | undefined;
  readonly version?: string | undefined;
  /** Labels file (JSON array or one per line) for top-k answers. */
  readonly labels?: string | undefined;
  /**
   * Pipeline stages to plan for, or `'auto'` for the planner to choose. The plan is made once
   * `minWorkers` workers have joined, so that every stage fits the worker that holds it.
   * Default 2. Ignored when `cuts` is given.
   */
  readonly stages?: number | 'auto' | undefined;
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
  /** Workers to wait for before planning and placing stages. Default: one per stage (1 with `'auto'`). */
  readonly minWorkers?: number | undefined;
  /**
   * Memory the master may use to run stages itself (degraded mode, the warm-up check), in
   * bytes; a stage needing more is never run here. Default: half the machine's, at most what
   * the backend can hold.
   */
  readonly maxMemoryBytes?: number | undefined;
  /** Serve at once, running stages on the master until workers come. Default false. */
  readonly startDegraded?: boolean | undefined;
  readonly heartbeatTimeoutMs?: number | undefined;
  readonly heartbeatIntervalMs?: number | undefined;
  readonly backend?: BackendName | undefined;
  /** Deadline of each HTTP request in ms. Default 120 000. */
  readonly requestTimeoutMs?: number | undefined;
  /** Most rows per batch of the dynamic batcher; 1 switches batching off. Default 8. */
  readonly maxBatchSize?: number | undefined;
  /** Longest wait of a request for batch-mates, in ms. Default 5. */
  readonly maxBatchDelayMs?: number | undefined;
  /** Most requests waiting in the batcher queue; beyond, 503 with Retry-After. Default 256. */
  readonly maxQueue?: number | undefined;
  /** Batches in flight at once (the pipeline overlaps them). Default 4. */
  readonly maxConcurrentBatches?: number | undefined;
  /** Bytes of the result cache; 0 switches it off. Default 64 MiB. */
  readonly cacheBytes?: number | undefined;
  /** Largest accepted HTTP request body in bytes (413 above). Default 32 MiB. */
  readonly bodyLimitBytes?: number | undefined;
  /** Image preprocessing of `POST /api/infer` for `model` (a repository's come from its `config.json`). */
  readonly preprocess?: PreprocessConfig | undefined;
  readonly logger?: Logger | undefined;
  /** Registry the coordinator, transport and HTTP API report to (`GET /metrics`). Default: a new one. */
  readonly metrics?: PrometheusMetrics | undefined;
  readonly onEvent?: ((event: CoordinatorEvent) => void) | undefined;
  /** Called with progress messages while loading and planning. */
  readonly onStep?: ((step: string) => void) | undefined;
}

/** A running master. */
export interface MasterHandle {
  readonly coordinator: Coordinator;
  /** What the HTTP API serves: the coordinator behind the result cache and the batcher. */
  readonly service: InferenceService;
  /** The result cache (for its stats), unless switched off. */
  readonly cache: CachingService | undefined;
  readonly http: FastifyInstance;
  /** The master's metrics, served at `GET /metrics`. */
  readonly metrics: PrometheusMetrics;
  /** Base URL of the HTTP API, e.g. `http://127.0.0.1:8080`. */
  readonly httpUrl: string;
  /** Address workers dial. */
  readonly clusterAddress: string;
  readonly backend: BackendInfo;
  /** The (first) served model's name and cuts (empty until it is planned for the workers). */
  readonly modelName: string;
  readonly cuts: readonly number[];
  /** The model repository behind `/v2/repository/*` (the coordinator's versions with `model`). */
  readonly repository: ModelRepository;
  /** Resolves once every stage is served by a worker (or at once with `startDegraded`). */
  readonly ready: Promise<void>;
  stop(): Promise<void>;
}

function isFastifyLogger(logger: Logger | undefined): logger is Logger & FastifyBaseLogger {
  const l = logger as Partial<FastifyBaseLogger> | undefined;
  return typeof l?.child === 'function' && typeof l.trace === 'function' && typeof l.level === 'string';
}

function urlHost(host: string): string {
  if (host === '0.0.0.0' || host === '::' || host === '') return '127.0.0.1';
  return host.includes(':') ? `[${host}]` : host;
}

/** Opens (or, for an http(s) URL, loads) the single `--model`: the spec the master deploys. */
async function prepareSingleModel(
  source: string,
  options: MasterOptions,
  backend: BackendInfo,
  step: (step: string) => void,
): Promise<DeploymentSpec> {
  const labels = options.labels ? await readLabels(options.labels) : undefined;
  /** The cuts given, or how to plan them (profiling with `profile()` unless told not to). */
  const cutsOrPlan = async (layers: number, profile: () => Promise<number[]>) => {
    if (options.cuts !== undefined) return { cuts: options.cuts };
    let layerCostsMs: number[] | undefined;
    if (options.profile ?? true) {
      step(`profiling ${layers} layers on ${backend.name}`);
      layerCostsMs = await profile();
    }
    step(`${options.stages ?? 2} stages are planned once the workers have joined`);
    return { plan: { stages: options.stages ?? 2, layerCostsMs } };
  };
  if (isHttpSource(source)) {
    step(`loading ${source}`);
    const model = await loadLayersModel(source);
    const layers = analyzeModel(model).layers.length;
    return {
      name: options.name ?? model.name,
      version: options.version,
      model,
      labels,
      ...(await cutsOrPlan(layers, () => profileLayers(model, { runs: 3, warmup: 1, clock: 'auto' }))),
    };
  }
  step(`opening ${source}`);
  const artifacts = await openModelArtifacts(source);
  const analysis = analyzeModelJson(artifacts.json, artifacts.path);
  return {
    name: options.name ?? analysis.name,
    version: options.version,
    artifacts,
    labels,
    ...(await cutsOrPlan(analysis.layers.length, () =>
      profileTopology(artifacts.json, { runs: 3, warmup: 1, clock: 'auto', path: artifacts.path }),
    )),
  };
}

/** Starts a master. The HTTP API answers at once (`/v2/health/ready` is 503 until ready). */
export async function startMaster(options: MasterOptions): Promise<MasterHandle> {
  if ((options.model === undefined) === (options.modelRepo === undefined)) {
    throw new DinferError(
      DinferErrorCode.INVALID_ARGUMENT,
      options.model === undefined
        ? 'no model to serve: give a model.json (--model) or a model repository (--model-repo)'
        : '--model and --model-repo exclude each other: serve one model or a repository',
    );
  }
  if (options.pollRepoSeconds !== undefined && options.modelRepo === undefined) {
    throw new DinferError(DinferErrorCode.INVALID_ARGUMENT, '--poll-repo needs --model-repo');
  }
  const step = options.onStep ?? (() => {});
  const backend = await initBackend({ backend: options.backend });
  const single =
    options.model === undefined ? undefined : await prepareSingleModel(options.model, options, backend, step);
  const token = options.token;
  const metrics = options.metrics ?? prometheusMetrics({ logger: options.logger });
  const transport = createTransport(options.transport ?? 'tcp', { token, logger: options.logger, metrics });
  const clusterHost = options.clusterHost ?? '0.0.0.0';
  const coordinator = createCoordinator({
    transport,
    listen: `${clusterHost.includes(':') ? `[${clusterHost}]` : clusterHost}:${options.clusterPort ?? 7070}`,
    token,
    scheduler: createScheduler(options.scheduler ?? 'round-robin'),
    heartbeat: { timeoutMs: options.heartbeatTimeoutMs, intervalMs: options.heartbeatIntervalMs },
    startDegraded: options.startDegraded,
    memoryBytes: options.maxMemoryBytes,
    logger: options.logger,
    metrics,
    onEvent: options.onEvent,
  });
  // HTTP -> result cache -> dynamic batcher -> coordinator.
  const batched = batchingService(coordinator, {
    maxBatchSize: options.maxBatchSize ?? 8,
    maxDelayMs: options.maxBatchDelayMs ?? 5,
    maxQueue: options.maxQueue ?? 256,
    maxConcurrentBatches: options.maxConcurrentBatches,
    // A lone request never waits for batch-mates; batches form while the pipeline is busy.
    flushWhenIdle: true,
    metrics,
    logger: options.logger,
  });
  const cacheBytes = options.cacheBytes ?? 64 * 1024 * 1024;
  const cache = cacheBytes > 0 ? cachingService(batched, { maxBytes: cacheBytes, metrics }) : undefined;
  const service: InferenceService = cache ?? batched;
  const { address } = await coordinator.start();
  const repository = createModelRepository({
    coordinator,
    dir: options.modelRepo,
    planning: { stages: options.stages, profile: options.profile, onStep: step },
    logger: options.logger,
  });
  let deployments: Deployment[];
  try {
    if (single) {
      if (single.cuts !== undefined)
        step(`partitioning at cuts [${single.cuts.join(', ')}] and preparing shards`);
      deployments = [await coordinator.deploy(single)];
    } else {
      step(`loading the model repository ${options.modelRepo}`);
      deployments = await repository.loadAll();
    }
  } catch (error) {
    await coordinator.stop();
    throw error;
  }
  const poller: RepositoryPoller | undefined =
    options.pollRepoSeconds === undefined
      ? undefined
      : startRepositoryPoller(repository, {
          intervalMs: options.pollRepoSeconds * 1000,
          logger: options.logger,
          onEvent: (event) =>
            step(
              event.type === 'loaded'
                ? `repository: ${event.outcome.name} version ${event.outcome.version} is active (was ${event.outcome.previous ?? 'none'})`
                : event.type === 'failed'
                  ? `repository: ${event.name} version ${event.version} failed: ${event.error}`
                  : `repository: new version ${event.name} ${event.version} found; loading once its files are stable`,
            ),
        });
  const first = deployments[0]!;
  const http = createHttpApi(service, {
    requestTimeoutMs: options.requestTimeoutMs ?? 120_000,
    bodyLimitBytes: options.bodyLimitBytes,
    serverName: 'dinfer',
    // A pino logger (the CLI's) also logs each HTTP request, its requestId included.
    ...(isFastifyLogger(options.logger) ? { logger: options.logger } : {}),
    metrics,
    status: () => coordinator.status(),
    repository,
    ...(options.modelRepo === undefined
      ? options.preprocess === undefined
        ? {}
        : { preprocess: () => options.preprocess }
      : { preprocess: (model: ServedModel) => repository.preprocessFor(model) }),
  });
  const httpHost = options.httpHost ?? '0.0.0.0';
  await http.listen({ host: httpHost, port: options.httpPort ?? 8080 });
  const bound = http.server.address();
  const port = typeof bound === 'object' && bound ? bound.port : (options.httpPort ?? 8080);
  const ready = coordinator.waitUntilReady({
    minWorkers: options.minWorkers ?? Math.max(...deployments.map((d) => d.expectedStages)),
  });
  ready.catch(() => {});
  return {
    coordinator,
    service,
    cache,
    http,
    metrics,
    httpUrl: `http://${urlHost(httpHost)}:${port}`,
    clusterAddress: address,
    backend,
    modelName: first.name,
    get cuts() {
      return first.partition.cuts;
    },
    repository,
    ready,
    async stop() {
      await poller?.stop();
      await http.close();
      await coordinator.stop();
    },
  };
}
