/**
 * `dinfer up`: a master and N workers on this machine, serving a model (default: the
 * generated ResNet50).
 *
 * @module
 */
import { availableParallelism } from 'node:os';
import { initBackend } from '@dinfer/core';
import { Command } from 'commander';
import { startLocalCluster } from '../cluster/local-cluster.js';
import { UP_BINDINGS } from '../config/bindings.js';
import { resolveCommandOptions } from '../config/resolve.js';
import { createClusterReporter, createLogger, readyBanner, untilSignal } from './cluster-output.js';
import { type CliIo, parsePositiveInt } from './common.js';
import { defaultModel } from './default-model.js';
import { type ServeOptions, serveSettings, withServeOptions } from './master.js';

interface UpOptions extends ServeOptions {
  readonly model?: string;
  readonly workers: number;
  readonly cacheDir?: string;
  /** Exit once ready (for scripts and smoke tests) instead of serving until a signal. */
  readonly exitWhenReady: boolean;
}

/** Runs `dinfer up` until SIGINT/SIGTERM. */
export async function runUp(options: UpOptions, io: CliIo): Promise<void> {
  // The backend first: generating the example model must already run on it.
  await initBackend({ backend: options.backend });
  const model = options.model ?? (await defaultModel(io));
  const reporter = createClusterReporter(io);
  const stages = options.cuts ? undefined : (options.stages ?? Math.max(1, Math.min(options.workers, 4)));
  io.err(`starting a master and ${options.workers} worker process(es) for ${model}`);
  const cluster = await startLocalCluster({
    ...serveSettings(options),
    model,
    stages,
    workers: options.workers,
    cacheDir: options.cacheDir,
    logger: createLogger(options.logLevel),
    onEvent: (event) => reporter.onEvent(event),
    onStep: (step) => io.err(step),
    onWorkerOutput: (line) => io.err(line),
  });
  reporter.stop();
  const { master } = cluster;
  io.err(`backend: ${master.backend.name} (${master.backend.source}); cuts [${master.cuts.join(', ')}]`);
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
  return withServeOptions(new Command('up'))
    .description('start a local cluster: a master and N worker processes on this machine')
    .option('--model <model.json>', 'model to serve (default: the generated ResNet50)')
    .option('--workers <n>', 'worker processes', parsePositiveInt, availableParallelism())
    .option('--cache-dir <dir>', 'shard cache directory of the workers')
    .option('--exit-when-ready', 'stop once the cluster is ready (smoke test)', false)
    .action(async (_flags: unknown, command: Command) => {
      const { options } = await resolveCommandOptions(command, UP_BINDINGS);
      return runUp(options as unknown as UpOptions, io);
    });
}
