/**
 * A worker process: dials the master, receives its shards and serves stage requests.
 *
 * @module
 */
import { homedir } from 'node:os';
import { join } from 'node:path';
import {
  type BackendInfo,
  type BackendName,
  createWorker,
  type DinferWorker,
  initBackend,
  type Logger,
  measureCapabilities,
} from '@dinfer/core';
import { createTransport, type TransportKind } from './transport-factory.js';

/** Options of {@link startWorkerProcess}. */
export interface WorkerProcessOptions {
  /** The master's cluster address, `host:port`. */
  readonly master: string;
  readonly transport?: TransportKind | undefined;
  readonly token?: string | undefined;
  readonly name?: string | undefined;
  /** Shard cache directory. Default `$DINFER_CACHE_DIR/shards` or `~/.cache/dinfer/shards`. */
  readonly cacheDir?: string | undefined;
  readonly cacheMaxBytes?: number | undefined;
  readonly queueLimit?: number | undefined;
  /** Memory budget announced to the master, in bytes. Default: half of the machine's. */
  readonly memoryBytes?: number | undefined;
  readonly backend?: BackendName | undefined;
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
    // A raw transport: the worker runtime authenticates with the token, redials and re-joins.
    transport: createTransport(options.transport ?? 'tcp', { logger: options.logger }),
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
