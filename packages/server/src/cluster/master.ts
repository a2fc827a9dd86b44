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
  isHttpSource,
  type Logger,
  loadLayersModel,
  openModelArtifacts,
  profileLayers,
  profileTopology,
  type ServedModel,
} from '@dinfer/core';
import { createHeartbeatReceiver, initBackend } from '@dinfer/core/node';
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import {
  type DefaultedSetting,
  type SettingOptions,
  type SettingValue,
  settingDefault,
} from '../config/resolve.js';
import { secretFromSettings } from '../config/secrets.js';
import { createHttpApi } from '../http/api.js';
import { type PrometheusMetrics, prometheusMetrics } from '../metrics/prometheus-metrics.js';
import type { PreprocessConfig } from '../preprocess/config.js';
import { createModelRepository, type ModelRepository } from '../repository/model-repository.js';
import { type RepositoryPoller, startRepositoryPoller } from '../repository/repository-poller.js';
import { resolveClusterToken } from './cluster-credentials.js';
import { masterTls } from './cluster-tls.js';
import { readLabels } from './labels.js';
import { resolveScheduler, type SchedulerOption } from './scheduler-factory.js';
import { checkTransportOption, resolveTransport, type TransportOption } from './transport-factory.js';

/** The default of master setting `key`, from the settings table. */
function setting<K extends DefaultedSetting<'master'>>(key: K): SettingValue<'master', K> {
  return settingDefault('master', key);
}

/** Settings of `dinfer master` that are about the CLI, not the master. */
type CliOnlySettings =
  | 'logLevel'
  | 'cache'
  | 'preprocessScale'
  | 'preprocessMean'
  | 'preprocessStd'
  | 'preprocessFit';

/**
 * Options of {@link startMaster}. The settings are those of `dinfer master`, by the same
 * names (`model`, `modelRepo`, `httpPort`, `maxBatchSize`, `startDegraded`, ...): see the
 * settings table (`dinfer master --help`) for each and its default. `model` and `modelRepo`
 * exclude each other; with `modelRepo`, `name`, `version`, `labels` and `cuts` apply to no
 * model. `cacheMaxBytes: 0` switches the result cache off. A master needs a cluster `token`
 * (or `tokenFile`) of 16 characters or more, unless `insecure`.
 */
export interface MasterOptions
  extends Omit<SettingOptions<'master', CliOnlySettings>, 'transport' | 'scheduler'> {
  /** `tcp` (default), `socketio`, or a `Transport` of your own (the workers must speak it too). */
  readonly transport?: TransportOption | undefined;
  /** `round-robin` (default), `load`, `capability`, or a `Scheduler` of your own. */
  readonly scheduler?: SchedulerOption | undefined;
  readonly heartbeatIntervalMs?: number | undefined;
  /** Batches in flight at once (the pipeline overlaps them). Default 4. */
  readonly maxConcurrentBatches?: number | undefined;
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
  const version = options.version ?? setting('version');
  /** The cuts given, or how to plan them (profiling with `profile()` unless told not to). */
  const cutsOrPlan = async (layers: number, profile: () => Promise<number[]>) => {
    if (options.cuts !== undefined) return { cuts: options.cuts };
    let layerCostsMs: number[] | undefined;
    if (options.profile ?? setting('profile')) {
      step(`profiling ${layers} layers on ${backend.name}`);
      layerCostsMs = await profile();
    }
    const stages = options.stages ?? setting('stages');
    step(`${stages} stages are planned once the workers have joined`);
    return { plan: { stages, layerCostsMs } };
  };
  if (isHttpSource(source)) {
    step(`loading ${source}`);
    const model = await loadLayersModel(source);
    const layers = analyzeModel(model).layers.length;
    return {
      name: options.name ?? model.name,
      version,
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
    version,
    artifacts,
    labels,
    ...(await cutsOrPlan(analysis.layers.length, () =>
      profileTopology(artifacts.json, { runs: 3, warmup: 1, clock: 'auto', path: artifacts.path }),
    )),
  };
}

/**
 * Starts a master. The HTTP API answers at once (`/v2/health/ready` is 503 until ready).
 *
 * @throws DinferError INVALID_ARGUMENT for a `transport` or `scheduler` that is neither a
 *   built-in name nor an implementation, or for `model` and `modelRepo` both or neither given;
 *   CONFIG_INVALID without a cluster token (and without `insecure`), for a short token, or
 *   for TLS or token files that cannot be read.
 */
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
  // Checked before anything is loaded: a wrong value fails at once.
  const transportOption = checkTransportOption(options.transport ?? setting('transport'));
  const scheduler = resolveScheduler(options.scheduler ?? setting('scheduler'));
  const token = await resolveClusterToken(options, 'master');
  const tls = await masterTls(options);
  const adminToken = await secretFromSettings(options.adminToken, options.adminTokenFile, 'the admin token', [
    '--admin-token (DINFER_ADMIN_TOKEN)',
    '--admin-token-file',
  ]);
  const metrics = options.metrics ?? prometheusMetrics({ logger: options.logger });
  const transport = resolveTransport(transportOption, { tls, logger: options.logger, metrics });
  const step = options.onStep ?? (() => {});
  const backend = await initBackend({ backend: options.backend });
  const single =
    options.model === undefined ? undefined : await prepareSingleModel(options.model, options, backend, step);
  const clusterHost = options.clusterHost ?? setting('clusterHost');
  const coordinator = createCoordinator({
    transport,
    listen: `${clusterHost.includes(':') ? `[${clusterHost}]` : clusterHost}:${options.clusterPort ?? setting('clusterPort')}`,
    token,
    scheduler,
    heartbeat: {
      // Signed UDP datagrams beside each worker's connection.
      receiver: createHeartbeatReceiver,
      timeoutMs: options.heartbeatTimeoutMs ?? setting('heartbeatTimeoutMs'),
      intervalMs: options.heartbeatIntervalMs,
    },
    startDegraded: options.startDegraded ?? setting('startDegraded'),
    memoryBytes: options.memoryBytes,
    logger: options.logger,
    metrics,
    onEvent: options.onEvent,
  });
  // HTTP -> result cache -> dynamic batcher -> coordinator.
  const batched = batchingService(coordinator, {
    maxBatchSize: options.maxBatchSize ?? setting('maxBatchSize'),
    maxDelayMs: options.maxBatchDelayMs ?? setting('maxBatchDelayMs'),
    maxQueue: options.maxQueue ?? setting('maxQueue'),
    maxConcurrentBatches: options.maxConcurrentBatches,
    // A lone request never waits for batch-mates; batches form while the pipeline is busy.
    flushWhenIdle: true,
    metrics,
    logger: options.logger,
  });
  const cacheBytes = options.cacheMaxBytes ?? setting('cacheMaxBytes');
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
    requestTimeoutMs: options.requestTimeoutMs ?? setting('requestTimeoutMs'),
    bodyLimitBytes: options.bodyLimitBytes ?? setting('bodyLimitBytes'),
    bodyTimeoutMs: options.bodyTimeoutMs ?? setting('bodyTimeoutMs'),
    idleTimeoutMs: options.idleTimeoutMs ?? setting('idleTimeoutMs'),
    maxConnections: options.maxConnections ?? setting('maxConnections'),
    rateLimit: options.rateLimit ?? setting('rateLimit'),
    rateLimitWindowMs: options.rateLimitWindowMs ?? setting('rateLimitWindowMs'),
    jsonMaxDepth: options.jsonMaxDepth ?? setting('jsonMaxDepth'),
    jsonMaxValues: options.jsonMaxValues ?? setting('jsonMaxValues'),
    maxImagePixels: options.maxImagePixels ?? setting('maxImagePixels'),
    maxImagePixelRatio: options.maxImagePixelRatio ?? setting('maxImagePixelRatio'),
    allowedHosts: options.allowedHosts,
    modelControl: options.modelControl ?? setting('modelControl'),
    adminToken,
    statusAccess: options.statusAccess ?? setting('statusAccess'),
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
  const httpHost = options.httpHost ?? setting('httpHost');
  const httpPort = options.httpPort ?? setting('httpPort');
  await http.listen({ host: httpHost, port: httpPort });
  const bound = http.server.address();
  const port = typeof bound === 'object' && bound ? bound.port : httpPort;
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
