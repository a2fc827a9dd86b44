/**
 * `dinfer master --model <model.json>` (or `--model-repo <dir>` for every model of a repository):
 * load, plan, wait for workers, ship shards, serve.
 *
 * @module
 */
import { Command } from 'commander';
import { resolveClusterToken } from '../cluster/cluster-credentials.js';
import { masterTls } from '../cluster/cluster-tls.js';
import { type MasterOptions, startMaster } from '../cluster/master.js';
import { withSettingOptions } from '../config/command-options.js';
import {
  type CommandSettings,
  preprocessSettings,
  requireSetting,
  resolveCommandOptions,
} from '../config/resolve.js';
import { prometheusMetrics } from '../metrics/prometheus-metrics.js';
import { createClusterReporter, createLogger, readyBanner, untilSignal } from './cluster-output.js';
import type { CliIo } from './common.js';
import { nameOf, schedulerOf, transportOf } from './extensions.js';
import { warnSecretFlags } from './secret-flags.js';

/** The settings `dinfer master` and `dinfer up` share. */
export type ServeSettings = Pick<
  CommandSettings<'up'>,
  keyof CommandSettings<'up'> & keyof CommandSettings<'master'>
>;

/**
 * The `startMaster` options `master` and `up` share, from their common settings (the
 * transport and the scheduler apart: each command makes its own).
 */
export function serveSettings(options: ServeSettings): Omit<MasterOptions, 'transport' | 'scheduler'> {
  return {
    name: options.name,
    version: options.version,
    labels: options.labels,
    stages: options.stages,
    cuts: options.cuts,
    profile: options.profile,
    httpHost: options.httpHost,
    httpPort: options.httpPort,
    bodyLimitBytes: options.bodyLimitBytes,
    requestTimeoutMs: options.requestTimeoutMs,
    bodyTimeoutMs: options.bodyTimeoutMs,
    idleTimeoutMs: options.idleTimeoutMs,
    maxConnections: options.maxConnections,
    rateLimit: options.rateLimit,
    rateLimitWindowMs: options.rateLimitWindowMs,
    jsonMaxDepth: options.jsonMaxDepth,
    jsonMaxValues: options.jsonMaxValues,
    maxImagePixels: options.maxImagePixels,
    maxImagePixelRatio: options.maxImagePixelRatio,
    allowedHosts: options.allowedHosts,
    modelControl: options.modelControl,
    adminToken: options.adminToken,
    adminTokenFile: options.adminTokenFile,
    statusAccess: options.statusAccess,
    maxBatchSize: options.maxBatchSize,
    maxBatchDelayMs: options.maxBatchDelayMs,
    maxQueue: options.maxQueue,
    cacheMaxBytes: options.cache ? options.cacheMaxBytes : 0,
    preprocess: preprocessSettings(options),
    backend: options.backend,
  };
}

/** Runs `dinfer master` until SIGINT/SIGTERM. */
export async function runMaster(options: CommandSettings<'master'>, io: CliIo): Promise<void> {
  const logger = createLogger(options.logLevel);
  // The credentials first: a master without them stops before loading anything.
  const token = await resolveClusterToken(options, 'master');
  const tls = await masterTls(options);
  if (token === undefined) {
    io.err('warning: no cluster token (--insecure): any process that reaches the cluster port may join');
  }
  const metrics = prometheusMetrics({ logger });
  const transport = await transportOf(options.transport, { tls, logger, metrics });
  const scheduler = await schedulerOf(options.scheduler, { logger, metrics });
  const reporter = createClusterReporter(io);
  const master = await startMaster({
    ...serveSettings(options),
    transport,
    scheduler,
    metrics,
    model: options.model,
    modelRepo: options.modelRepo,
    pollRepoSeconds: options.pollRepoSeconds,
    clusterHost: options.clusterHost,
    clusterPort: options.clusterPort,
    token,
    insecure: options.insecure,
    // A built-in transport is made by startMaster, with the TLS files; a module's has them.
    ...(typeof transport === 'string' ? { tlsCert: options.tlsCert, tlsKey: options.tlsKey } : {}),
    minWorkers: options.minWorkers,
    memoryBytes: options.memoryBytes,
    startDegraded: options.startDegraded,
    heartbeatTimeoutMs: options.heartbeatTimeoutMs,
    logger,
    onEvent: (event) => reporter.onEvent(event),
    onStep: (step) => io.err(step),
  });
  io.err(`backend: ${master.backend.name} (${master.backend.source})`);
  // Results on stdout (what to dial, where to send requests); progress stays on stderr.
  if (master.cuts.length > 0) io.out(`cuts: [${master.cuts.join(', ')}]`);
  io.out(
    `cluster: workers dial ${master.clusterAddress} (${nameOf(transport)}, scheduler ${nameOf(scheduler)})`,
  );
  io.out(`HTTP: ${master.httpUrl} (ready once workers have their stages)`);
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
  return withSettingOptions(new Command('master'), 'master')
    .description('serve a model: plan stages, wait for workers, ship shards, answer HTTP')
    .action(async (_flags: unknown, command: Command) => {
      const { options, sources } = await resolveCommandOptions(command, 'master');
      warnSecretFlags(sources, io);
      if (options.modelRepo === undefined) requireSetting(options, 'master', 'model');
      // --model-repo on the command line beats a model from DINFER_MODEL or the config file.
      else if (sources.model !== undefined && sources.model !== 'flag') options.model = undefined;
      return runMaster(options, io);
    });
}
