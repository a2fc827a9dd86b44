/**
 * `dinfer up`: a master in this process and N worker processes on this machine.
 *
 * @module
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { type SettingOptions, settingDefault } from '../config/resolve.js';
import { type MasterHandle, type MasterOptions, startMaster } from './master.js';

/** Options of {@link startLocalCluster}. */
export interface LocalClusterOptions
  extends Omit<MasterOptions, 'token' | 'minWorkers'>,
    Pick<SettingOptions<'up'>, 'workers' | 'cacheDir'> {
  /** Receives each worker's log lines, prefixed with its name. */
  readonly onWorkerOutput?: ((line: string) => void) | undefined;
}

/** A running local cluster. */
export interface LocalClusterHandle {
  readonly master: MasterHandle;
  readonly workers: readonly ChildProcess[];
  /** Stops the workers (SIGTERM: they drain) and the master. */
  stop(): Promise<void>;
}

const cliMain = fileURLToPath(new URL('../cli/main.js', import.meta.url));

/** Starts a master and its worker processes; resolves once the cluster is ready. */
export async function startLocalCluster(options: LocalClusterOptions): Promise<LocalClusterHandle> {
  const workerCount = options.workers ?? settingDefault('up', 'workers');
  const token = randomBytes(24).toString('base64url');
  const master = await startMaster({
    ...options,
    token,
    clusterHost: options.clusterHost ?? '127.0.0.1',
    clusterPort: options.clusterPort ?? 0,
    minWorkers: Math.max(1, workerCount),
  });
  const children: ChildProcess[] = [];
  for (let i = 0; i < workerCount; i++) {
    const name = `worker-${i + 1}`;
    const args = [
      cliMain,
      'worker',
      '--master',
      master.clusterAddress,
      '--transport',
      options.transport ?? 'tcp',
    ];
    args.push('--name', name);
    if (options.cacheDir) args.push('--cache-dir', options.cacheDir);
    if (options.backend) args.push('--backend', options.backend);
    const child = spawn(process.execPath, args, {
      env: { ...process.env, DINFER_TOKEN: token },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    for (const stream of [child.stdout, child.stderr]) {
      if (!stream) continue;
      createInterface({ input: stream }).on('line', (line) => options.onWorkerOutput?.(`[${name}] ${line}`));
    }
    children.push(child);
  }
  const stopWorkers = async () => {
    await Promise.all(
      children.map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve();
            const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
            child.once('exit', () => {
              clearTimeout(timer);
              resolve();
            });
            child.kill('SIGTERM');
          }),
      ),
    );
  };
  try {
    await master.ready;
  } catch (error) {
    await stopWorkers();
    await master.stop();
    throw error;
  }
  return {
    master,
    workers: children,
    async stop() {
      // Master first, so losing the workers is not mistaken for a failure to recover from.
      await master.stop();
      await stopWorkers();
    },
  };
}
