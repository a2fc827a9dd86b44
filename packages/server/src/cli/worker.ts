/**
 * `dinfer worker --master HOST:PORT`: join a master and serve the stages it ships.
 *
 * @module
 */
import { Command, Option } from 'commander';
import { TRANSPORT_KINDS, type TransportKind } from '../cluster/transport-factory.js';
import { startWorkerProcess } from '../cluster/worker-process.js';
import { WORKER_BINDINGS } from '../config/bindings.js';
import { requireSetting, resolveCommandOptions, withConfigOption } from '../config/resolve.js';
import { createLogger, untilSignal } from './cluster-output.js';
import { type CliIo, type CommonOptions, parseBytes, parsePositiveInt, withBackendOption } from './common.js';

interface WorkerCommandOptions extends CommonOptions {
  readonly master: string;
  readonly transport: TransportKind;
  readonly token?: string;
  readonly name?: string;
  readonly cacheDir?: string;
  readonly cacheMaxBytes?: number;
  /** `--max-memory`: the memory budget announced to the master. */
  readonly maxMemory?: number;
  readonly queueLimit?: number;
  readonly logLevel?: string;
}

/** Runs a worker until SIGINT/SIGTERM, then drains: queued work finishes before it exits. */
export async function runWorker(options: WorkerCommandOptions, io: CliIo): Promise<void> {
  const logger = createLogger(options.logLevel);
  const token = options.token;
  const handle = await startWorkerProcess({
    master: options.master,
    transport: options.transport,
    token,
    name: options.name,
    cacheDir: options.cacheDir,
    cacheMaxBytes: options.cacheMaxBytes,
    memoryBytes: options.maxMemory,
    queueLimit: options.queueLimit,
    backend: options.backend,
    logger,
  });
  io.err(`backend: ${handle.backend.name} (${handle.backend.source})`);
  io.err(`joined ${options.master} as ${handle.worker.workerId}; shard cache ${handle.cacheDir}`);
  const signal = await untilSignal();
  io.err(`${signal}: draining`);
  await handle.worker.stop({ drain: true });
}

/** The `dinfer worker` command. */
export function workerCommand(io: CliIo): Command {
  return withConfigOption(withBackendOption(new Command('worker')))
    .description('join a master and serve pipeline stages')
    .option(
      '--master <host:port>',
      "the master's cluster address (required here, in $DINFER_MASTER or the config)",
    )
    .addOption(new Option('--transport <kind>', 'cluster transport').choices(TRANSPORT_KINDS).default('tcp'))
    .option('--token <token>', 'cluster token (default $DINFER_TOKEN)')
    .option('--name <name>', 'name shown by the master (default host-pid)')
    .option('--cache-dir <dir>', 'shard cache directory (default ~/.cache/dinfer/shards)')
    .option('--cache-max-bytes <bytes>', 'bound of the shard cache', parseBytes)
    .option(
      '--max-memory <bytes>',
      'memory budget for stages announced to the master (default: half the machine, at most 4GiB on wasm)',
      parseBytes,
    )
    .option('--queue-limit <n>', 'stage requests allowed to wait', parsePositiveInt)
    .option('--log-level <level>', 'structured log level on stderr')
    .action(async (_flags: unknown, command: Command) => {
      const { options } = await resolveCommandOptions(command, WORKER_BINDINGS);
      requireSetting(options, WORKER_BINDINGS, 'master', '--master');
      return runWorker(options as unknown as WorkerCommandOptions, io);
    });
}
