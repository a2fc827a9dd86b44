/**
 * `dinfer up`: a master in this process and N worker processes on this machine.
 *
 * @module
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { DinferError, DinferErrorCode } from '@dinfer/core';
import { type SettingOptions, settingDefault } from '../config/resolve.js';
import { prometheusMetrics } from '../metrics/prometheus-metrics.js';
import { describeValue } from './extension-module.js';
import { type MasterHandle, type MasterOptions, startMaster } from './master.js';
import {
  parseTransportKind,
  type TransportKind,
  type TransportOption,
  transportFromModule,
} from './transport-factory.js';

/**
 * The transport of a local cluster: a built-in one by name, or `{ module }`, the path of a
 * module whose default export makes the transport (see `transportFromModule`). The master
 * (in this process) and every worker process load that module, so it cannot be a `Transport`
 * object.
 */
export type LocalClusterTransport = TransportKind | { readonly module: string };

/** Options of {@link startLocalCluster}. */
export interface LocalClusterOptions
  extends Omit<
      MasterOptions,
      'token' | 'tokenFile' | 'insecure' | 'tlsCert' | 'tlsKey' | 'minWorkers' | 'transport'
    >,
    Pick<SettingOptions<'up'>, 'workers' | 'cacheDir'> {
  /** Default `tcp`. A module path is resolved against the working directory. */
  readonly transport?: LocalClusterTransport | undefined;
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

/**
 * The master's transport and what the workers are told to use, for `transport`.
 *
 * @throws DinferError INVALID_ARGUMENT for anything but a built-in name or `{ module }`.
 */
async function localTransport(
  transport: LocalClusterTransport,
  context: { token: string; logger: MasterOptions['logger']; metrics: MasterOptions['metrics'] },
): Promise<{ master: TransportOption; workers: string }> {
  if (typeof transport === 'string') return { master: parseTransportKind(transport), workers: transport };
  const module = (transport as { module?: unknown } | null)?.module;
  if (typeof module !== 'string') {
    throw new DinferError(
      DinferErrorCode.INVALID_ARGUMENT,
      `transport: a local cluster's workers are processes of their own: expected "tcp", "socketio" or { module: "./my-transport.js" }, got ${describeValue(transport)}`,
    );
  }
  const file = path.resolve(module);
  return { master: await transportFromModule(file, context), workers: file };
}

/**
 * Starts a master and its worker processes; resolves once the cluster is ready.
 *
 * @throws DinferError INVALID_ARGUMENT for a transport that is not a name or `{ module }`,
 *   and what `startMaster` throws.
 */
export async function startLocalCluster(options: LocalClusterOptions): Promise<LocalClusterHandle> {
  const workerCount = options.workers ?? settingDefault('up', 'workers');
  const token = randomBytes(24).toString('base64url');
  const metrics = options.metrics ?? prometheusMetrics({ logger: options.logger });
  const transport = await localTransport(
    options.transport ?? (settingDefault('up', 'transport') as TransportKind),
    {
      token,
      logger: options.logger,
      metrics,
    },
  );
  const master = await startMaster({
    ...options,
    transport: transport.master,
    metrics,
    token,
    clusterHost: options.clusterHost ?? '127.0.0.1',
    clusterPort: options.clusterPort ?? 0,
    minWorkers: Math.max(1, workerCount),
  });
  const children: ChildProcess[] = [];
  for (let i = 0; i < workerCount; i++) {
    const name = `worker-${i + 1}`;
    const args = [cliMain, 'worker', '--master', master.clusterAddress, '--transport', transport.workers];
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
