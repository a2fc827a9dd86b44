/**
 * Merges the settings of a command from four layers, first found wins:
 * command-line flags > `DINFER_*` environment variables > the config file > the defaults of
 * the command's options. Which flags were really typed comes from commander's
 * `getOptionValueSource`, so an option's default never hides a value from the file.
 *
 * Every layer is checked against the same schema; a problem names its place: the flag
 * (`--http-port`), the variable (`DINFER_HTTP_PORT`) or the file and path
 * (`config.yaml: master.http.port`).
 *
 * @module
 */
import { DinferError, DinferErrorCode } from '@dinfer/core';
import type { Command } from 'commander';
import type { ImageFit, PreprocessConfig } from '../preprocess/config.js';
import { CONFIG_ENV_VAR, type ConfigBinding, type EnvValueKind } from './bindings.js';
import { type ConfigPath, describeIssues, formatConfigPath } from './issues.js';
import { loadConfigFile } from './load-config.js';
import { configSchema, type DinferConfig } from './schema.js';

/** Where a resolved setting came from. */
export type SettingSource = 'flag' | 'env' | 'file' | 'default';

/** The merged options of a command, and the source of each bound setting. */
export interface ResolvedOptions {
  /** The command's options with every bound setting resolved across the layers. */
  readonly options: Record<string, unknown>;
  /** Option attribute -> where its value came from. */
  readonly sources: Readonly<Record<string, SettingSource>>;
  /** The config file that was read, if any. */
  readonly configFile?: string;
  /** The whole validated config document (empty without a file). */
  readonly config: DinferConfig;
}

function getAt(document: unknown, path: ConfigPath): unknown {
  let node = document;
  for (const key of path) {
    if (typeof node !== 'object' || node === null) return undefined;
    node = (node as Record<string | number, unknown>)[key];
  }
  return node;
}

function setAt(document: Record<string, unknown>, path: ConfigPath, value: unknown): void {
  let node = document;
  path.forEach((key, i) => {
    if (i === path.length - 1) node[key] = value;
    else {
      const next = (node[key] ?? {}) as Record<string, unknown>;
      node[key] = next;
      node = next;
    }
  });
}

/** Reads an environment variable's text as `kind`; text that is no such value stays text, for the message. */
export function readEnvValue(text: string, kind: EnvValueKind): unknown {
  const number = (t: string): unknown => {
    const trimmed = t.trim();
    return trimmed !== '' && Number.isFinite(Number(trimmed)) ? Number(trimmed) : t;
  };
  switch (kind) {
    case 'string':
    case 'bytes':
      return text;
    case 'name':
      return text.trim().toLowerCase();
    case 'number':
      return number(text);
    case 'numbers':
      return text.split(',').map(number);
    case 'boolean': {
      const t = text.trim().toLowerCase();
      if (t === 'true' || t === '1' || t === 'yes' || t === 'on') return true;
      if (t === 'false' || t === '0' || t === 'no' || t === 'off') return false;
      return text;
    }
  }
}

/** Checks one layer against the schema; problems are located by `locate`. */
function check(document: Record<string, unknown>, locate: (path: ConfigPath) => string): DinferConfig {
  const result = configSchema.safeParse(document, { reportInput: true });
  if (result.success) return result.data;
  const lines = describeIssues(result.error.issues, configSchema, (p) => locate(p as ConfigPath));
  throw new DinferError(DinferErrorCode.CONFIG_INVALID, lines.join('\n  '), {
    details: { problems: lines },
  });
}

function samePath(a: ConfigPath, b: readonly PropertyKey[]): boolean {
  return a.length <= b.length && a.every((k, i) => k === b[i]);
}

/** The binding whose path is the longest prefix of `path`. */
function bindingAt(
  bindings: readonly ConfigBinding[],
  path: readonly PropertyKey[],
): ConfigBinding | undefined {
  return bindings.filter((x) => samePath(x.path, path)).sort((x, y) => y.path.length - x.path.length)[0];
}

/**
 * Resolves the options of `command` (call it from the command's action) against `bindings`.
 * The config file is `--config` (an option the command must declare) or `$DINFER_CONFIG`.
 *
 * @throws DinferError CONFIG_INVALID when the file, a variable or a flag holds an invalid value.
 */
export async function resolveCommandOptions(
  command: Command,
  bindings: readonly ConfigBinding[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<ResolvedOptions> {
  const given = command.opts() as Record<string, unknown>;
  const configFile =
    typeof given.config === 'string' ? given.config : env[CONFIG_ENV_VAR] ? env[CONFIG_ENV_VAR] : undefined;
  const file = configFile === undefined ? {} : (await loadConfigFile(configFile)).config;

  const envDocument: Record<string, unknown> = {};
  for (const binding of bindings) {
    const text = binding.env === undefined ? undefined : env[binding.env];
    if (text !== undefined && text !== '') setAt(envDocument, binding.path, readEnvValue(text, binding.kind));
  }
  const fromEnv = check(envDocument, (p) => {
    const binding = bindingAt(bindings, p);
    const rest = binding ? formatConfigPath(p.slice(binding.path.length)) : '';
    return `${binding?.env ?? formatConfigPath(p)}${rest === '' ? '' : ` (${rest})`}`;
  });

  const flagDocument: Record<string, unknown> = {};
  for (const binding of bindings) {
    if (command.getOptionValueSource(binding.option) === 'cli') {
      setAt(flagDocument, binding.path, given[binding.option]);
    }
  }
  const fromFlags = check(flagDocument, (p) => {
    const binding = bindingAt(bindings, p);
    const option = command.options.find((o) => o.attributeName() === binding?.option);
    return option?.long ?? formatConfigPath(p);
  });

  const options: Record<string, unknown> = { ...given };
  const sources: Record<string, SettingSource> = {};
  for (const binding of bindings) {
    const layers: [SettingSource, unknown][] = [
      ['flag', getAt(fromFlags, binding.path)],
      ['env', getAt(fromEnv, binding.path)],
      ['file', getAt(file, binding.path)],
    ];
    const found = layers.find(([, value]) => value !== undefined);
    if (found !== undefined) {
      options[binding.option] = found[1];
      sources[binding.option] = found[0];
    } else if (given[binding.option] !== undefined) {
      sources[binding.option] = 'default';
    }
  }
  return { options, sources, config: file, ...(configFile === undefined ? {} : { configFile }) };
}

/** The `master.preprocess` settings among resolved options, or `undefined` when none is set. */
export function preprocessSettings(options: Record<string, unknown>): PreprocessConfig | undefined {
  const scale = options.preprocessScale as number | undefined;
  const mean = options.preprocessMean as number[] | undefined;
  const std = options.preprocessStd as number[] | undefined;
  const fit = options.preprocessFit as ImageFit | undefined;
  if (scale === undefined && mean === undefined && std === undefined && fit === undefined) return undefined;
  return { scale, mean, std, fit };
}

/** Adds `--config <file>` to a command (read by {@link resolveCommandOptions}). */
export function withConfigOption(command: Command): Command {
  return command.option(
    '--config <file>',
    `config file, YAML or JSON (default $${CONFIG_ENV_VAR}); flags and DINFER_* variables override it`,
  );
}

/**
 * Checks that a required setting was given in some layer.
 *
 * @throws DinferError CONFIG_INVALID naming the flag, the variable and the config path that
 *   could provide it.
 */
export function requireSetting(
  options: Record<string, unknown>,
  bindings: readonly ConfigBinding[],
  option: string,
  flag: string,
): void {
  if (options[option] !== undefined) return;
  const binding = bindings.find((x) => x.option === option);
  const ways = [
    `pass ${flag}`,
    ...(binding?.env === undefined ? [] : [`set ${binding.env}`]),
    ...(binding === undefined ? [] : [`set ${formatConfigPath(binding.path)} in the config file`]),
  ];
  throw new DinferError(
    DinferErrorCode.CONFIG_INVALID,
    `no ${flag.replace(/^--/, '')} given: ${ways.slice(0, -1).join(', ')} or ${ways.at(-1)}`,
    { details: { option } },
  );
}
