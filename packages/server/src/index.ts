/**
 * The reference dinfer deployment: the master, worker and local-cluster processes
 * (`startMaster`, `startWorkerProcess`, `startLocalCluster`, taking your own `Transport` and
 * `Scheduler` or modules that make them), the HTTP API, Prometheus metrics, model repository
 * and the settings of the `dinfer` CLI.
 *
 * @packageDocumentation
 */
export {
  type LocalClusterHandle,
  type LocalClusterOptions,
  type LocalClusterTransport,
  startLocalCluster,
} from './cluster/local-cluster.js';
export { type MasterHandle, type MasterOptions, startMaster } from './cluster/master.js';
export {
  SCHEDULER_KINDS,
  type SchedulerContext,
  type SchedulerKind,
  type SchedulerOption,
  schedulerFromModule,
} from './cluster/scheduler-factory.js';
export {
  TRANSPORT_KINDS,
  type TransportContext,
  type TransportFactoryOptions,
  type TransportKind,
  type TransportOption,
  transportFromModule,
} from './cluster/transport-factory.js';
export {
  defaultCacheDir,
  startWorkerProcess,
  type WorkerProcessHandle,
  type WorkerProcessOptions,
} from './cluster/worker-process.js';
export { CONFIG_ENV_VAR } from './config/command-options.js';
export * from './config/load-config.js';
export { type CommandSettings, environmentVariables, type SettingSource } from './config/resolve.js';
export {
  configSchema,
  configSection,
  type DinferConfig,
  type DinferConfigInput,
  preprocessSectionSchema,
} from './config/schema.js';
export { MIN_TOKEN_LENGTH, TOKEN_ADVICE } from './config/secrets.js';
export type {
  PerCommand,
  Setting,
  SettingCommand,
  SettingFlag,
  SettingPath,
  SettingText,
} from './config/setting.js';
export * from './config/settings.js';
export { readByteCount } from './config/value-schemas.js';
export * from './errors-to-http.js';
export { type AdminCredential, adminCredential } from './http/admin-token.js';
export * from './http/api.js';
export {
  DEFAULT_HTTP_BODY_TIMEOUT_MS,
  DEFAULT_HTTP_IDLE_TIMEOUT_MS,
  DEFAULT_HTTP_MAX_CONNECTIONS,
} from './http/connection-limits.js';
export { DEFAULT_JSON_MAX_DEPTH, DEFAULT_JSON_MAX_VALUES } from './http/json-limits.js';
export * from './http/metrics-route.js';
export { DEFAULT_RATE_LIMIT_WINDOW_MS } from './http/rate-limit.js';
export * from './http/repository-routes.js';
export { STATUS_ACCESS_MODES, type StatusAccess } from './http/status-access.js';
export * from './http/status-page.js';
export * from './http/status-routes.js';
export * from './metrics/definitions.js';
export * from './metrics/prometheus-metrics.js';
export * from './preprocess/config.js';
export * from './preprocess/decode-image.js';
export * from './preprocess/image-to-tensor.js';
export * from './repository/load-version.js';
export * from './repository/model-repository.js';
export * from './repository/repository-poller.js';
export * from './repository/scan.js';
export * from './repository/version-config.js';
export * from './repository/version-order.js';
export * from './status/inference-recorder.js';
export * from './status/request-window.js';
export * from './status/status-report.js';
