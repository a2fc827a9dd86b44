/**
 * Where each setting of `dinfer master`, `dinfer worker` and `dinfer up` comes from: the
 * command-line option, the `DINFER_*` environment variable and the path in the config file.
 * These tables are the single source of the precedence rules and of the documented variables.
 *
 * @module
 */
import type { ConfigPath } from './issues.js';

/** How an environment variable's text is read before it is checked against the schema. */
/** `name` is a case-insensitive choice (`WASM` reads as `wasm`). */
export type EnvValueKind = 'string' | 'name' | 'number' | 'boolean' | 'numbers' | 'bytes';

/** One setting: its option on a command, its environment variable and its config path. */
export interface ConfigBinding {
  /** The commander attribute of the option (`httpPort` for `--http-port`). */
  readonly option: string;
  /** The path in the config document. */
  readonly path: ConfigPath;
  /** The environment variable, when there is one. */
  readonly env?: string;
  /** How to read the environment variable. */
  readonly kind: EnvValueKind;
}

const b = (option: string, path: ConfigPath, env: string | undefined, kind: EnvValueKind): ConfigBinding =>
  env === undefined ? { option, path, kind } : { option, path, env, kind };

/** Settings every command shares. */
const COMMON: readonly ConfigBinding[] = [
  b('backend', ['backend'], 'DINFER_BACKEND', 'name'),
  b('logLevel', ['logLevel'], 'DINFER_LOG_LEVEL', 'name'),
];

/** What a master serves and how it answers HTTP (shared by `master` and `up`). */
const SERVE: readonly ConfigBinding[] = [
  ...COMMON,
  b('model', ['master', 'model'], 'DINFER_MODEL', 'string'),
  b('name', ['master', 'name'], 'DINFER_MODEL_NAME', 'string'),
  b('modelVersion', ['master', 'version'], 'DINFER_MODEL_VERSION', 'string'),
  b('labels', ['master', 'labels'], 'DINFER_LABELS', 'string'),
  b('stages', ['master', 'stages'], 'DINFER_STAGES', 'number'),
  b('cuts', ['master', 'cuts'], 'DINFER_CUTS', 'numbers'),
  b('profile', ['master', 'profile'], 'DINFER_PROFILE', 'boolean'),
  b('httpHost', ['master', 'http', 'host'], 'DINFER_HTTP_HOST', 'string'),
  b('httpPort', ['master', 'http', 'port'], 'DINFER_HTTP_PORT', 'number'),
  b('bodyLimit', ['master', 'http', 'bodyLimitBytes'], 'DINFER_HTTP_BODY_LIMIT', 'bytes'),
  b('requestTimeout', ['master', 'http', 'requestTimeoutMs'], 'DINFER_HTTP_REQUEST_TIMEOUT_MS', 'number'),
  b('transport', ['master', 'cluster', 'transport'], 'DINFER_TRANSPORT', 'name'),
  b('scheduler', ['master', 'cluster', 'scheduler'], 'DINFER_SCHEDULER', 'name'),
  b('maxBatchSize', ['master', 'batching', 'maxBatchSize'], 'DINFER_MAX_BATCH_SIZE', 'number'),
  b('maxBatchDelayMs', ['master', 'batching', 'maxDelayMs'], 'DINFER_MAX_BATCH_DELAY_MS', 'number'),
  b('maxQueue', ['master', 'batching', 'maxQueue'], 'DINFER_MAX_QUEUE', 'number'),
  b('cache', ['master', 'cache', 'enabled'], 'DINFER_RESULT_CACHE', 'boolean'),
  b('cacheBytes', ['master', 'cache', 'maxBytes'], 'DINFER_RESULT_CACHE_MAX_BYTES', 'bytes'),
  b('preprocessScale', ['master', 'preprocess', 'scale'], 'DINFER_PREPROCESS_SCALE', 'number'),
  b('preprocessMean', ['master', 'preprocess', 'mean'], 'DINFER_PREPROCESS_MEAN', 'numbers'),
  b('preprocessStd', ['master', 'preprocess', 'std'], 'DINFER_PREPROCESS_STD', 'numbers'),
  b('preprocessFit', ['master', 'preprocess', 'fit'], 'DINFER_PREPROCESS_FIT', 'name'),
];

/** Settings of `dinfer master`. */
export const MASTER_BINDINGS: readonly ConfigBinding[] = [
  ...SERVE,
  b('modelRepo', ['master', 'modelRepo'], 'DINFER_MODEL_REPO', 'string'),
  b('pollRepo', ['master', 'pollRepoSeconds'], 'DINFER_POLL_REPO_SECONDS', 'number'),
  b('clusterHost', ['master', 'cluster', 'host'], 'DINFER_CLUSTER_HOST', 'string'),
  b('clusterPort', ['master', 'cluster', 'port'], 'DINFER_CLUSTER_PORT', 'number'),
  b('token', ['master', 'cluster', 'token'], 'DINFER_TOKEN', 'string'),
  b('minWorkers', ['master', 'cluster', 'minWorkers'], 'DINFER_MIN_WORKERS', 'number'),
  b('maxMemory', ['master', 'memoryBytes'], 'DINFER_MAX_MEMORY', 'bytes'),
  b('degraded', ['master', 'cluster', 'startDegraded'], 'DINFER_START_DEGRADED', 'boolean'),
  b('heartbeatTimeout', ['master', 'cluster', 'heartbeatTimeoutMs'], 'DINFER_HEARTBEAT_TIMEOUT_MS', 'number'),
];

/** Settings of `dinfer up` (the master's, plus the workers' shard cache). */
export const UP_BINDINGS: readonly ConfigBinding[] = [
  ...SERVE,
  b('cacheDir', ['worker', 'cacheDir'], 'DINFER_CACHE_DIR', 'string'),
];

/** Settings of `dinfer worker`. */
export const WORKER_BINDINGS: readonly ConfigBinding[] = [
  ...COMMON,
  b('master', ['worker', 'master'], 'DINFER_MASTER', 'string'),
  b('transport', ['worker', 'transport'], 'DINFER_TRANSPORT', 'name'),
  b('token', ['worker', 'token'], 'DINFER_TOKEN', 'string'),
  b('name', ['worker', 'name'], 'DINFER_WORKER_NAME', 'string'),
  b('cacheDir', ['worker', 'cacheDir'], 'DINFER_CACHE_DIR', 'string'),
  b('cacheMaxBytes', ['worker', 'cacheMaxBytes'], 'DINFER_CACHE_MAX_BYTES', 'bytes'),
  b('maxMemory', ['worker', 'memoryBytes'], 'DINFER_MAX_MEMORY', 'bytes'),
  b('queueLimit', ['worker', 'queueLimit'], 'DINFER_QUEUE_LIMIT', 'number'),
];

/** The environment variable naming the config file when `--config` is not given. */
export const CONFIG_ENV_VAR = 'DINFER_CONFIG';

/** Every `DINFER_*` variable the config layer reads, with its config path (for docs and `--help`). */
export function environmentVariables(): { env: string; path: string }[] {
  const seen = new Map<string, Set<string>>();
  for (const binding of [...MASTER_BINDINGS, ...UP_BINDINGS, ...WORKER_BINDINGS]) {
    if (binding.env === undefined) continue;
    const paths = seen.get(binding.env) ?? new Set<string>();
    paths.add(binding.path.join('.'));
    seen.set(binding.env, paths);
  }
  return [
    { env: CONFIG_ENV_VAR, path: '(the config file)' },
    ...[...seen].map(([env, paths]) => ({ env, path: [...paths].join(', ') })),
  ];
}
