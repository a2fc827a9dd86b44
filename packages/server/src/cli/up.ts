/**
 * `dinfer up`: a master and N workers on this machine, serving a model (default: the
 * generated ResNet50).
 *
 * @module
 */
import { initBackend } from '@dinfer/core/node';
import { Command } from 'commander';
import { isModulePath } from '../cluster/extension-module.js';
import { startLocalCluster } from '../cluster/local-cluster.js';
import { parseTransportKind } from '../cluster/transport-factory.js';
import { withSettingOptions } from '../config/command-options.js';
import { type CommandSettings, type ResolvedOptions, resolveCommandOptions } from '../config/resolve.js';
import { prometheusMetrics } from '../metrics/prometheus-metrics.js';
import { createClusterReporter, createLogger, readyBanner, untilSignal } from './cluster-output.js';
import type { CliIo } from './common.js';
import { defaultModel } from './default-model.js';
import { schedulerOf } from './extensions.js';
import { serveSettings } from './master.js';
import { warnSecretFlags } from './secret-flags.js';

/** Runs `dinfer up` until SIGINT/SIGTERM (or until ready, with `--exit-when-ready`). */
export async function runUp(resolved: ResolvedOptions<'up'>, io: CliIo): Promise<void> {
  const options: CommandSettings<'up'> = resolved.options;
  // The backend first: generating the example model must already run on it.
  await initBackend({ backend: options.backend });
  const model = options.model ?? (await defaultModel(io));
  const reporter = createClusterReporter(io);
  // Without stages from any layer: one per worker, at most 4.
  const stages = options.cuts
    ? undefined
    : resolved.sources.stages === 'default'
      ? Math.max(1, Math.min(options.workers, 4))
      : options.stages;
  const logger = createLogger(options.logLevel);
  const metrics = prometheusMetrics({ logger });
  io.err(`starting a master and ${options.workers} worker process(es) for ${model}`);
  const cluster = await startLocalCluster({
    ...serveSettings(options),
    // Each worker process loads a transport module itself; the scheduler runs here only.
    transport: isModulePath(options.transport)
      ? { module: options.transport }
      : parseTransportKind(options.transport),
    scheduler: await schedulerOf(options.scheduler, { logger, metrics }),
    metrics,
    model,
    stages,
    workers: options.workers,
    cacheDir: options.cacheDir,
    logger,
    onEvent: (event) => reporter.onEvent(event),
    onStep: (step) => io.err(step),
    onWorkerOutput: (line) => io.err(line),
  });
  reporter.stop();
  const { master } = cluster;
  io.err(`backend: ${master.backend.name} (${master.backend.source})`);
  io.out(`cuts: [${master.cuts.join(', ')}]`);
  const input = master.coordinator.models()[0]?.inputs[0]?.shape ?? [];
  io.out(readyBanner(master.httpUrl, master.modelName, input));
  if (!options.exitWhenReady) {
    const signal = await untilSignal();
    io.err(`${signal}: stopping workers and master`);
  }
  await cluster.stop();
}

/** The `dinfer up` command. */
export function upCommand(io: CliIo): Command {
  return withSettingOptions(new Command('up'), 'up')
    .description('start a local cluster: a master and N worker processes on this machine')
    .action(async (_flags: unknown, command: Command) => {
      const resolved = await resolveCommandOptions(command, 'up');
      warnSecretFlags(resolved.sources, io);
      return runUp(resolved, io);
    });
}
