/**
 * `dinfer master --model <model.json>`: load, plan, wait for workers, ship shards, serve.
 *
 * @module
 */
import { Command, Option } from 'commander';
import { startMaster } from '../cluster/master.js';
import { SCHEDULER_KINDS, type SchedulerKind } from '../cluster/scheduler-factory.js';
import { TRANSPORT_KINDS, type TransportKind } from '../cluster/transport-factory.js';
import { createClusterReporter, createLogger, readyBanner, untilSignal } from './cluster-output.js';
import {
  type CliIo,
  type CommonOptions,
  parseCutList,
  parsePositiveInt,
  withBackendOption,
} from './common.js';

/** Options of `dinfer master` and `dinfer up`. */
export interface ServeOptions extends CommonOptions {
  readonly name?: string;
  readonly modelVersion?: string;
  readonly labels?: string;
  readonly stages?: number;
  readonly cuts?: number[];
  readonly profile: boolean;
  readonly httpHost: string;
  readonly httpPort: number;
  readonly transport: TransportKind;
  readonly scheduler: SchedulerKind;
  readonly logLevel?: string;
}

/** Adds the options `master` and `up` share. */
export function withServeOptions(command: Command): Command {
  return withBackendOption(command)
    .option('--name <name>', 'model name clients use (default: the model name)')
    .option('--model-version <version>', 'version label', '1')
    .option('--labels <file>', 'class labels: JSON array or one per line')
    .option('--stages <n>', 'pipeline stages to plan', parsePositiveInt)
    .option('--cuts <list>', 'explicit cut indices, e.g. 57,120', parseCutList)
    .option('--no-profile', 'plan with FLOPs estimates instead of measuring layers')
    .option('--http-host <host>', 'HTTP bind address', '0.0.0.0')
    .option('--http-port <port>', 'HTTP port (0 picks one)', (v) => Number.parseInt(v, 10), 8080)
    .addOption(new Option('--transport <kind>', 'cluster transport').choices(TRANSPORT_KINDS).default('tcp'))
    .addOption(
      new Option('--scheduler <kind>', 'stage scheduler').choices(SCHEDULER_KINDS).default('round-robin'),
    )
    .option('--log-level <level>', 'structured log level on stderr (default warn, or $DINFER_LOG_LEVEL)');
}

interface MasterCommandOptions extends ServeOptions {
  readonly model: string;
  readonly clusterHost: string;
  readonly clusterPort: number;
  readonly token?: string;
  readonly minWorkers?: number;
  readonly degraded: boolean;
  readonly heartbeatTimeout: number;
}

/** Runs `dinfer master` until SIGINT/SIGTERM. */
export async function runMaster(options: MasterCommandOptions, io: CliIo): Promise<void> {
  const logger = createLogger(options.logLevel);
  const token = options.token ?? process.env.DINFER_TOKEN;
  if (!token) io.err('warning: no cluster token (--token or DINFER_TOKEN): any peer may join this cluster');
  const reporter = createClusterReporter(io);
  const master = await startMaster({
    model: options.model,
    name: options.name,
    version: options.modelVersion,
    labels: options.labels,
    stages: options.stages,
    cuts: options.cuts,
    profile: options.profile,
    httpHost: options.httpHost,
    httpPort: options.httpPort,
    clusterHost: options.clusterHost,
    clusterPort: options.clusterPort,
    transport: options.transport,
    token,
    scheduler: options.scheduler,
    minWorkers: options.minWorkers,
    startDegraded: options.degraded,
    heartbeatTimeoutMs: options.heartbeatTimeout,
    backend: options.backend,
    logger,
    onEvent: (event) => reporter.onEvent(event),
    onStep: (step) => io.err(step),
  });
  io.err(`backend: ${master.backend.name} (${master.backend.source})`);
  io.err(`cuts: [${master.cuts.join(', ')}]`);
  io.err(`cluster: workers dial ${master.clusterAddress} (${options.transport})`);
  io.err(`HTTP: ${master.httpUrl} (ready once workers have their stages)`);
  const signal = untilSignal();
  const first = await Promise.race([master.ready.then(() => 'ready' as const), signal]);
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
    .requiredOption('--model <model.json>', 'model.json path or http(s) URL')
    .option('--cluster-host <host>', 'cluster bind address', '0.0.0.0')
    .option(
      '--cluster-port <port>',
      'cluster port for workers (TCP, plus UDP heartbeats)',
      (v) => Number.parseInt(v, 10),
      7070,
    )
    .option('--token <token>', 'cluster token (default $DINFER_TOKEN)')
    .option(
      '--min-workers <n>',
      'workers to wait for before placing stages (default: one per stage)',
      parsePositiveInt,
    )
    .option('--degraded', 'serve at once, running stages on the master until workers join', false)
    .option(
      '--heartbeat-timeout <ms>',
      'remove a worker after this long without heartbeats',
      parsePositiveInt,
      30_000,
    )
    .action(async (options: MasterCommandOptions) => runMaster(options, io));
}
