/**
 * `dinfer master --model <model.json>` (or `--model-repo <dir>` for every model of a repository):
 * load, plan, wait for workers, ship shards, serve.
 *
 * @module
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { type MasterOptions, startMaster } from '../cluster/master.js';
import { SCHEDULER_KINDS, type SchedulerKind } from '../cluster/scheduler-factory.js';
import { TRANSPORT_KINDS, type TransportKind } from '../cluster/transport-factory.js';
import { MASTER_BINDINGS } from '../config/bindings.js';
import {
  preprocessSettings,
  requireSetting,
  resolveCommandOptions,
  withConfigOption,
} from '../config/resolve.js';
import { createClusterReporter, createLogger, readyBanner, untilSignal } from './cluster-output.js';
import {
  type CliIo,
  type CommonOptions,
  parseBytes,
  parseCutList,
  parsePositiveInt,
  parsePositiveNumber,
  parseStages,
  withBackendOption,
} from './common.js';

/** Options of `dinfer master` and `dinfer up`. */
export interface ServeOptions extends CommonOptions {
  readonly name?: string;
  readonly modelVersion?: string;
  readonly labels?: string;
  readonly stages?: number | 'auto';
  readonly cuts?: number[];
  readonly profile: boolean;
  readonly httpHost: string;
  readonly httpPort: number;
  readonly transport: TransportKind;
  readonly scheduler: SchedulerKind;
  readonly logLevel?: string;
  /** Largest accepted HTTP body in bytes. */
  readonly bodyLimit?: number;
  /** Deadline of each HTTP inference in ms. */
  readonly requestTimeout?: number;
  /** `--max-batch-size`: most rows per batch (1 = no batching). */
  readonly maxBatchSize?: number;
  /** `--max-batch-delay-ms`: longest wait for batch-mates. */
  readonly maxBatchDelayMs?: number;
  /** `--max-queue`: most requests waiting for a batch (503 beyond). */
  readonly maxQueue?: number;
  /** `--no-cache` sets false. */
  readonly cache?: boolean;
  /** `--cache-bytes`: result cache size. */
  readonly cacheBytes?: number;
}

/** Parses a number of milliseconds that may be 0. */
function parseDelayMs(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < 0) {
    throw new InvalidArgumentError(`expected a number of milliseconds >= 0, got "${value}"`);
  }
  return n;
}

/** The `startMaster` settings `master` and `up` share, from their common options. */
export function serveSettings(
  options: ServeOptions,
): Pick<
  MasterOptions,
  | 'name'
  | 'version'
  | 'labels'
  | 'cuts'
  | 'profile'
  | 'httpHost'
  | 'httpPort'
  | 'bodyLimitBytes'
  | 'requestTimeoutMs'
  | 'maxBatchSize'
  | 'maxBatchDelayMs'
  | 'maxQueue'
  | 'cacheBytes'
  | 'preprocess'
  | 'transport'
  | 'scheduler'
  | 'backend'
> {
  return {
    name: options.name,
    version: options.modelVersion,
    labels: options.labels,
    cuts: options.cuts,
    profile: options.profile,
    httpHost: options.httpHost,
    httpPort: options.httpPort,
    bodyLimitBytes: options.bodyLimit,
    requestTimeoutMs: options.requestTimeout,
    maxBatchSize: options.maxBatchSize,
    maxBatchDelayMs: options.maxBatchDelayMs,
    maxQueue: options.maxQueue,
    cacheBytes: options.cache === false ? 0 : options.cacheBytes,
    preprocess: preprocessSettings(options as unknown as Record<string, unknown>),
    transport: options.transport,
    scheduler: options.scheduler,
    backend: options.backend,
  };
}

/** Adds the options `master` and `up` share (`--config` included). */
export function withServeOptions(command: Command): Command {
  return withConfigOption(withBackendOption(command))
    .option('--name <name>', 'model name clients use (default: the model name)')
    .option('--model-version <version>', 'version label', '1')
    .option('--labels <file>', 'class labels: JSON array or one per line')
    .option('--stages <n>', "pipeline stages to plan, or auto (fitting the workers' memory)", parseStages)
    .option('--cuts <list>', 'explicit cut indices, e.g. 57,120', parseCutList)
    .option('--no-profile', 'plan with FLOPs estimates instead of measuring layers')
    .option('--http-host <host>', 'HTTP bind address', '0.0.0.0')
    .option('--http-port <port>', 'HTTP port (0 picks one)', Number, 8080)
    .option('--body-limit <bytes>', 'largest HTTP request body (default 32MiB)', parseBytes)
    .option('--request-timeout <ms>', 'deadline of each HTTP inference', parsePositiveInt, 120_000)
    .option(
      '--max-batch-size <n>',
      'dynamic batching: most rows per batch, 1 = off (default 8)',
      parsePositiveInt,
    )
    .option(
      '--max-batch-delay-ms <ms>',
      'dynamic batching: longest wait for batch-mates (default 5)',
      parseDelayMs,
    )
    .option(
      '--max-queue <n>',
      'requests waiting for a batch before 503 + Retry-After (default 256)',
      parsePositiveInt,
    )
    .option('--cache-bytes <bytes>', 'result cache size, e.g. 64MiB (default 64MiB)', parseBytes)
    .option('--no-cache', 'switch the result cache off')
    .addOption(new Option('--transport <kind>', 'cluster transport').choices(TRANSPORT_KINDS).default('tcp'))
    .addOption(
      new Option('--scheduler <kind>', 'stage scheduler').choices(SCHEDULER_KINDS).default('round-robin'),
    )
    .option('--log-level <level>', 'structured log level on stderr (default warn, or $DINFER_LOG_LEVEL)');
}

interface MasterCommandOptions extends ServeOptions {
  readonly model?: string;
  /** `--model-repo`: serve every model of a repository instead of `--model`. */
  readonly modelRepo?: string;
  /** `--poll-repo`: seconds between repository scans for new versions. */
  readonly pollRepo?: number;
  readonly clusterHost: string;
  readonly clusterPort: number;
  readonly token?: string;
  readonly minWorkers?: number;
  /** `--max-memory`: memory the master may use to run stages itself. */
  readonly maxMemory?: number;
  readonly degraded: boolean;
  readonly heartbeatTimeout: number;
}

/** Runs `dinfer master` until SIGINT/SIGTERM. */
export async function runMaster(options: MasterCommandOptions, io: CliIo): Promise<void> {
  const logger = createLogger(options.logLevel);
  const token = options.token;
  if (!token)
    io.err(
      'warning: no cluster token (--token, DINFER_TOKEN or master.cluster.token): any peer may join this cluster',
    );
  const reporter = createClusterReporter(io);
  const master = await startMaster({
    model: options.model,
    modelRepo: options.modelRepo,
    pollRepoSeconds: options.pollRepo,
    ...serveSettings(options),
    stages: options.stages,
    clusterHost: options.clusterHost,
    clusterPort: options.clusterPort,
    token,
    minWorkers: options.minWorkers,
    maxMemoryBytes: options.maxMemory,
    startDegraded: options.degraded,
    heartbeatTimeoutMs: options.heartbeatTimeout,
    logger,
    onEvent: (event) => reporter.onEvent(event),
    onStep: (step) => io.err(step),
  });
  io.err(`backend: ${master.backend.name} (${master.backend.source})`);
  if (master.cuts.length > 0) io.err(`cuts: [${master.cuts.join(', ')}]`);
  io.err(`cluster: workers dial ${master.clusterAddress} (${options.transport})`);
  io.err(`HTTP: ${master.httpUrl} (ready once workers have their stages)`);
  const signal = untilSignal();
  const first = await Promise.race([master.ready.then(() => 'ready' as const), signal]).catch(
    async (error: unknown) => {
      // The cluster will never be ready (a model the workers cannot hold): stop serving, then say why.
      await master.stop();
      throw error;
    },
  );
  if (first === 'ready') {
    reporter.stop();
    const input = master.coordinator.models()[0]?.inputs[0]?.shape ?? [];
    io.out(readyBanner(master.httpUrl, master.modelName, input));
    await signal;
  }
  io.err('shutting down');
  await master.stop();
}

/** The `dinfer master` command. */
export function masterCommand(io: CliIo): Command {
  return withServeOptions(new Command('master'))
    .description('serve a model: plan stages, wait for workers, ship shards, answer HTTP')
    .option(
      '--model <model.json>',
      'model.json path or http(s) URL (required here, in $DINFER_MODEL or the config)',
    )
    .option(
      '--model-repo <dir>',
      'serve every model of a repository <dir>/<model>/<version>/model.json (instead of --model)',
    )
    .option(
      '--poll-repo <seconds>',
      'with --model-repo: scan for new versions this often and hot-swap to them',
      parsePositiveNumber,
    )
    .option('--cluster-host <host>', 'cluster bind address', '0.0.0.0')
    .option('--cluster-port <port>', 'cluster port for workers (TCP, plus UDP heartbeats)', Number, 7070)
    .option('--token <token>', 'cluster token (default $DINFER_TOKEN)')
    .option(
      '--min-workers <n>',
      'workers to wait for before planning and placing stages (default: one per stage, 1 with --stages auto)',
      parsePositiveInt,
    )
    .option(
      '--max-memory <bytes>',
      'memory the master may use to run stages itself (default: half the machine, at most 4GiB on wasm)',
      parseBytes,
    )
    .option('--degraded', 'serve at once, running stages on the master until workers join', false)
    .option(
      '--heartbeat-timeout <ms>',
      'remove a worker after this long without heartbeats',
      parsePositiveInt,
      30_000,
    )
    .action(async (_flags: unknown, command: Command) => {
      const { options, sources } = await resolveCommandOptions(command, MASTER_BINDINGS);
      if (options.modelRepo === undefined) requireSetting(options, MASTER_BINDINGS, 'model', '--model');
      // --model-repo on the command line beats a model from DINFER_MODEL or the config file.
      else if (sources.model !== undefined && sources.model !== 'flag') delete options.model;
      return runMaster(options as unknown as MasterCommandOptions, io);
    });
}
