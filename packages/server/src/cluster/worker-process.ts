/**
 * A worker process: dials the master, receives its shards and serves stage requests.
 *
 * @module
 */
import { homedir } from 'node:os';
import { join } from 'node:path';
import {
  type BackendInfo,
  createHeartbeatSender,
  createWorker,
  type DinferWorker,
  initBackend,
  type Logger,
  measureCapabilities,
} from '@dinfer/core';
import { type SettingOptions, settingDefault } from '../config/resolve.js';
import { resolveTransport, type TransportOption } from './transport-factory.js';

/**
 * Options of {@link startWorkerProcess}. The settings are those of `dinfer worker`, by the same
 * names (`transport`, `token`, `cacheDir`, `memoryBytes`, ...): see the settings table
 * (`dinfer worker --help`).
 */
export interface WorkerProcessOptions
  extends Omit<SettingOptions<'worker', 'logLevel' | 'master'>, 'transport'> {
  /** The master's cluster address, `host:port`. */
  readonly master: string;
  /**
   * `tcp` (default), `socketio`, or a `Transport` of your own. The worker runtime redials and
   * rejoins by itself, so a transport of your own should not redial on its own.
   */
  readonly transport?: TransportOption | undefined;
  readonly logger?: Logger | undefined;
}

/** A running worker process. */
export interface WorkerProcessHandle {
  readonly worker: DinferWorker;
  readonly backend: BackendInfo;
  readonly cacheDir: string;
}

/** The default shard cache directory. */
export function defaultCacheDir(): string {
  return process.env.DINFER_CACHE_DIR
    ? join(process.env.DINFER_CACHE_DIR, 'shards')
    : join(homedir(), '.cache', 'dinfer', 'shards');
}

/**
 * Starts a worker and joins the master (retrying while the master is not up yet).
 *
 * @throws DinferError INVALID_ARGUMENT for a `transport` that is neither a built-in name nor a
 *   `Transport`.
 */
export async function startWorkerProcess(options: WorkerProcessOptions): Promise<WorkerProcessHandle> {
  const backend = await initBackend({ backend: options.backend });
  const cacheDir = options.cacheDir ?? defaultCacheDir();
  const worker = createWorker({
    // A raw transport: the worker runtime authenticates with the token, redials and re-joins.
    transport: resolveTransport(options.transport ?? settingDefault('worker', 'transport'), {
      logger: options.logger,
    }),
    master: options.master,
    token: options.token,
    name: options.name,
    cacheDir,
    cacheMaxBytes: options.cacheMaxBytes,
    queueLimit: options.queueLimit,
    // Signed UDP datagrams beside the connection, when the master asks for them.
    heartbeats: createHeartbeatSender,
    logger: options.logger,
    capabilities:
      options.memoryBytes === undefined
        ? undefined
        : await measureCapabilities({ memoryBytes: options.memoryBytes }),
  });
  await worker.start();
  return { worker, backend, cacheDir };
}
