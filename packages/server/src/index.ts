/**
 * @packageDocumentation
 */
export { CONFIG_ENV_VAR } from './config/command-options.js';
export * from './config/load-config.js';
export { type CommandSettings, environmentVariables, type SettingSource } from './config/resolve.js';
export * from './config/schema.js';
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
export * from './http/api.js';
export * from './http/metrics-route.js';
export * from './http/repository-routes.js';
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
