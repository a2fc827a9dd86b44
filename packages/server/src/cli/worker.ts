/**
 * `dinfer worker --master HOST:PORT`: join a master and serve the stages it ships.
 *
 * @module
 */
import { Command } from 'commander';
import { resolveClusterToken } from '../cluster/cluster-credentials.js';
import { workerTls } from '../cluster/cluster-tls.js';
import { startWorkerProcess } from '../cluster/worker-process.js';
import { withSettingOptions } from '../config/command-options.js';
import { type CommandSettings, requireSetting, resolveCommandOptions } from '../config/resolve.js';
import { createLogger, untilSignal } from './cluster-output.js';
import type { CliIo } from './common.js';
import { nameOf, transportOf } from './extensions.js';
import { warnSecretFlags } from './secret-flags.js';

/** Runs a worker until SIGINT/SIGTERM, then drains: queued work finishes before it exits. */
export async function runWorker(
  options: CommandSettings<'worker'> & { master: string },
  io: CliIo,
): Promise<void> {
  const logger = createLogger(options.logLevel);
  const token = await resolveClusterToken(options, 'worker');
  const tls = await workerTls(options);
  if (token === undefined) {
    io.err('warning: no cluster token (--insecure): any process may pose as the master to this worker');
  }
  // A raw transport: the worker runtime authenticates with the token, redials and re-joins.
  const transport = await transportOf(options.transport, { tls, logger });
  const handle = await startWorkerProcess({
    master: options.master,
    transport,
    token,
    insecure: options.insecure,
    // A built-in transport is made by startWorkerProcess, with the TLS files; a module's has them.
    ...(typeof transport === 'string' ? { tls: options.tls, tlsCa: options.tlsCa } : {}),
    name: options.name,
    cacheDir: options.cacheDir,
    cacheMaxBytes: options.cacheMaxBytes,
    memoryBytes: options.memoryBytes,
    queueLimit: options.queueLimit,
    backend: options.backend,
    logger,
  });
  io.err(`backend: ${handle.backend.name} (${handle.backend.source})`);
  io.out(
    `joined ${options.master} as ${handle.worker.workerId} (${nameOf(transport)}); shard cache ${handle.cacheDir}`,
  );
  const signal = await untilSignal();
  io.err(`${signal}: draining`);
  await handle.worker.stop({ drain: true });
}

/** The `dinfer worker` command. */
export function workerCommand(io: CliIo): Command {
  return withSettingOptions(new Command('worker'), 'worker')
    .description('join a master and serve pipeline stages')
    .action(async (_flags: unknown, command: Command) => {
      const { options, sources } = await resolveCommandOptions(command, 'worker');
      warnSecretFlags(sources, io);
      requireSetting(options, 'worker', 'master');
      return runWorker({ ...options, master: options.master as string }, io);
    });
}
