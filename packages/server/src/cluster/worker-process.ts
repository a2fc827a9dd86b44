/**
 * A worker process: dials the master, receives its shards and serves stage requests.
 *
 * @module
 */
import { homedir } from 'node:os';
import { join } from 'node:path';
import {
  type BackendInfo,
  createWorker,
  type DinferWorker,
  initBackend,
  type Logger,
  measureCapabilities,
} from '@dinfer/core';
import type { SettingOptions } from '../config/resolve.js';
import { createTransport } from './transport-factory.js';

/**
 * Options of {@link startWorkerProcess}. The settings are those of `dinfer worker`, by the same
 * names (`transport`, `token`, `cacheDir`, `memoryBytes`, ...): see the settings table
 * (`dinfer worker --help`).
 */
export interface WorkerProcessOptions extends SettingOptions<'worker', 'logLevel' | 'master'> {
  /** The master's cluster address, `host:port`. */
  readonly master: string;
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

/** Starts a worker and joins the master (retrying while the master is not up yet). */
export async function startWorkerProcess(options: WorkerProcessOptions): Promise<WorkerProcessHandle> {
  const backend = await initBackend({ backend: options.backend });
  const cacheDir = options.cacheDir ?? defaultCacheDir();
  const worker = createWorker({
    // The worker runtime redials and re-joins by itself, so the transport must not.
    transport: createTransport(options.transport ?? 'tcp', {
      token: options.token,
      reconnect: false,
      logger: options.logger,
    }),
    master: options.master,
    token: options.token,
    name: options.name,
    cacheDir,
    cacheMaxBytes: options.cacheMaxBytes,
    queueLimit: options.queueLimit,
    logger: options.logger,
    capabilities:
      options.memoryBytes === undefined
        ? undefined
        : await measureCapabilities({ memoryBytes: options.memoryBytes }),
  });
  await worker.start();
  return { worker, backend, cacheDir };
}
