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
  type Logger,
  measureCapabilities,
} from '@dinfer/core';
import { createBlobStore, createHeartbeatSender, initBackend } from '@dinfer/core/node';
import { type SettingOptions, settingDefault } from '../config/resolve.js';
import { resolveClusterToken } from './cluster-credentials.js';
import { workerTls } from './cluster-tls.js';
import { checkTransportOption, resolveTransport, type TransportOption } from './transport-factory.js';

/**
 * Options of {@link startWorkerProcess}. The settings are those of `dinfer worker`, by the same
 * names (`transport`, `token`, `tokenFile`, `insecure`, `tls`, `tlsCa`, `cacheDir`, ...): see
 * the settings table (`dinfer worker --help`).
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
  /** Gives up joining (the start rejects with `DINFER_ERR_ABORTED`). */
  readonly signal?: AbortSignal | undefined;
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
 * Starts a worker and joins the master (retrying while the master is not up yet). A worker
 * needs the cluster `token` (or `tokenFile`) unless `insecure`; with `tls` or `tlsCa` it dials
 * over TLS and joins only a master whose certificate verifies.
 *
 * @throws DinferError INVALID_ARGUMENT for a `transport` that is neither a built-in name nor a
 *   `Transport`; CONFIG_INVALID without a token (and without `insecure`), for a short token or
 *   unreadable files; ABORTED when `signal` fires before it joined.
 */
export async function startWorkerProcess(options: WorkerProcessOptions): Promise<WorkerProcessHandle> {
  const transportOption = checkTransportOption(options.transport ?? settingDefault('worker', 'transport'));
  const token = await resolveClusterToken(options, 'worker');
  const tls = await workerTls(options);
  // A raw transport: the worker runtime authenticates with the token, redials and re-joins.
  const transport = resolveTransport(transportOption, { tls, logger: options.logger });
  const backend = await initBackend({ backend: options.backend });
  const cacheDir = options.cacheDir ?? defaultCacheDir();
  const worker = createWorker({
    transport,
    master: options.master,
    token,
    name: options.name,
    // Shards on disk, shared safely with other workers of this machine, kept across restarts.
    store: createBlobStore({ dir: cacheDir, maxBytes: options.cacheMaxBytes, logger: options.logger }),
    queueLimit: options.queueLimit,
    // Signed UDP datagrams beside the connection, when the master asks for them.
    heartbeats: createHeartbeatSender,
    logger: options.logger,
    capabilities:
      options.memoryBytes === undefined
        ? undefined
        : await measureCapabilities({ memoryBytes: options.memoryBytes }),
  });
  await worker.start(options.signal);
  return { worker, backend, cacheDir };
}
