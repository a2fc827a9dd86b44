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
export { type LoadedConfig, loadConfigFile, parseConfig } from './config/load-config.js';
export type { SettingOptions } from './config/resolve.js';
export { type CommandSettings, environmentVariables, type SettingSource } from './config/resolve.js';
export { configSchema, type DinferConfig, type DinferConfigInput } from './config/schema.js';
export { MIN_TOKEN_LENGTH } from './config/secrets.js';
export type {
  PerCommand,
  Setting,
  SettingCommand,
  SettingFlag,
  SettingPath,
  SettingText,
} from './config/setting.js';
export { CONFIG_BACKENDS, LOG_LEVELS, SETTING_TABLE as SETTINGS } from './config/settings.js';
export {
  DEFAULT_RETRY_AFTER_SECONDS,
  errorToHttp,
  HTTP_STATUS_BY_ERROR_CODE,
  type HttpErrorBody,
  type HttpErrorResponse,
} from './errors-to-http.js';
export { type AdminCredential, adminCredential } from './http/admin-token.js';
export { createHttpApi, DEFAULT_HTTP_BODY_LIMIT_BYTES, type HttpApiOptions } from './http/api.js';
export {
  DEFAULT_HTTP_BODY_TIMEOUT_MS,
  DEFAULT_HTTP_IDLE_TIMEOUT_MS,
  DEFAULT_HTTP_MAX_CONNECTIONS,
} from './http/connection-limits.js';
export { DEFAULT_JSON_MAX_DEPTH, DEFAULT_JSON_MAX_VALUES } from './http/json-limits.js';
export { DEFAULT_RATE_LIMIT_WINDOW_MS } from './http/rate-limit.js';
export type { RepositoryRoutesTarget } from './http/repository-routes.js';
export { STATUS_ACCESS_MODES, type StatusAccess } from './http/status-access.js';
export { STATUS_PAGE_URL } from './http/status-page.js';
export { DINFER_METRICS, type MetricDefinition, type MetricType } from './metrics/definitions.js';
export {
  type PrometheusMetrics,
  type PrometheusMetricsOptions,
  prometheusMetrics,
} from './metrics/prometheus-metrics.js';
export {
  checkPreprocessOption,
  IMAGE_FITS,
  type ImageFit,
  type PreprocessConfig,
  type PreprocessOption,
  type ResolvedPreprocess,
  resolvePreprocess,
} from './preprocess/config.js';
export {
  DEFAULT_MAX_IMAGE_PIXEL_RATIO,
  DEFAULT_MAX_IMAGE_PIXELS,
  type DecodedImage,
  type DecodeImageOptions,
  decodeImage,
  SUPPORTED_IMAGE_FORMATS,
} from './preprocess/decode-image.js';
export type { ImageChannels } from './preprocess/image-target.js';
export { type ImageTensor, type ImageToTensorOptions, imageToTensor } from './preprocess/image-to-tensor.js';
export type { RepositoryIndexEntry, RepositoryModelState } from './repository/index-entry.js';
export type { VersionPlanning } from './repository/load-version.js';
export {
  createModelRepository,
  type LoadOptions,
  type LoadOutcome,
  type ModelRepository,
  type ModelRepositoryOptions,
  type UnloadOutcome,
} from './repository/model-repository.js';
export type { RepositoryModel, RepositoryScan, RepositoryVersion } from './repository/scan.js';
export { VERSION_CONFIG_FILE, type VersionConfig } from './repository/version-config.js';
export type { StatusReport, StatusStage, StatusWorker } from './status/status-report.js';
