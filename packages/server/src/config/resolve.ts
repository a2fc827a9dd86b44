/**
 * Merges the settings of a command from four layers, first found wins:
 * command-line flags > `DINFER_*` environment variables > the config file > the defaults of
 * the settings table. Which flags were really typed comes from commander's
 * `getOptionValueSource`, so a default never hides a value from the file.
 *
 * Every value is checked against its setting's schema; a problem names its place: the flag
 * (`--http-port`), the variable (`DINFER_HTTP_PORT`) or the file and path
 * (`config.yaml: master.http.port`).
 *
 * @module
 */
import { DinferError, DinferErrorCode } from '@dinfer/core';
import type { Command } from 'commander';
import type { z } from 'zod';
import type { ImageFit, PreprocessConfig } from '../preprocess/config.js';
import { CONFIG_ENV_VAR, optionsOf, settingsOf } from './command-options.js';
import { getAt } from './document-path.js';
import { describeIssues, formatConfigPath } from './issues.js';
import { loadConfigFile } from './load-config.js';
import type { DinferConfig } from './schema.js';
import { configPathOf, readEnvValue, type Setting, type SettingCommand } from './setting.js';
import type { SETTINGS } from './settings.js';

/** Where a resolved setting came from. */
export type SettingSource = 'flag' | 'env' | 'file' | 'default';

type Table = (typeof SETTINGS)[number];
type TakenBy<S, C> = S extends { readonly commands: readonly (infer X)[] }
  ? C extends X
    ? S
    : never
  : never;
type ValueOf<S> = S extends { readonly schema: infer Z extends z.ZodType } ? z.output<Z> : never;

/**
 * The settings of command `C` by key, typed from the table: a setting with a default always
 * has a value, the others may be `undefined`.
 */
export type CommandSettings<C extends SettingCommand> = {
  -readonly [S in TakenBy<Table, C> as S['key']]: S extends { readonly default: unknown }
    ? ValueOf<S>
    : ValueOf<S> | undefined;
};

/** The merged settings of a command, and the source of each. */
export interface ResolvedOptions<C extends SettingCommand> {
  /** Every setting of the command, resolved across the layers. */
  readonly options: CommandSettings<C>;
  /** Setting key -> where its value came from (absent: no layer and no default). */
  readonly sources: Readonly<Partial<Record<keyof CommandSettings<C>, SettingSource>>>;
  /** The config file that was read, if any. */
  readonly configFile?: string;
  /** The whole validated config document (empty without a file). */
  readonly config: DinferConfig;
}

/** Checks `value` against the setting's schema; problems are added to `problems`, located by `where`. */
function check(entry: Setting, value: unknown, where: string, problems: string[]): unknown {
  const result = entry.schema.safeParse(value, { reportInput: true });
  if (result.success) return result.data;
  problems.push(
    ...describeIssues(result.error.issues, entry.schema, (p) =>
      p.length === 0 ? where : `${where} (${formatConfigPath(p)})`,
    ),
  );
  return undefined;
}

function invalid(problems: readonly string[]): DinferError {
  return new DinferError(DinferErrorCode.CONFIG_INVALID, problems.join('\n  '), {
    details: { problems },
  });
}

/** The value of `entry`'s variable (or a former name of it) in `env`, with the variable's name. */
function fromEnvironment(entry: Setting, env: NodeJS.ProcessEnv): { name: string; text: string } | undefined {
  for (const name of [entry.env, ...(entry.formerEnv ?? [])]) {
    const text = name === undefined ? undefined : env[name];
    if (name !== undefined && text !== undefined && text !== '') return { name, text };
  }
  return undefined;
}

/**
 * Resolves the settings of command `name` (call it from the command's action). The config
 * file is `--config` or `$DINFER_CONFIG`.
 *
 * @throws DinferError CONFIG_INVALID when the file, a variable or a flag holds an invalid value.
 */
export async function resolveCommandOptions<C extends SettingCommand>(
  command: Command,
  name: C,
  env: NodeJS.ProcessEnv = process.env,
): Promise<ResolvedOptions<C>> {
  const given = command.opts() as Record<string, unknown>;
  const configFile =
    typeof given.config === 'string' ? given.config : env[CONFIG_ENV_VAR] ? env[CONFIG_ENV_VAR] : undefined;
  const file = configFile === undefined ? {} : (await loadConfigFile(configFile)).config;
  const entries = settingsOf(name);

  const fromEnv = new Map<Setting, unknown>();
  const envProblems: string[] = [];
  for (const entry of entries) {
    const found = fromEnvironment(entry, env);
    if (found === undefined) continue;
    const value = check(entry, readEnvValue(found.text, entry.text), found.name, envProblems);
    if (value !== undefined) fromEnv.set(entry, value);
  }
  if (envProblems.length > 0) throw invalid(envProblems);

  const fromFlags = new Map<Setting, unknown>();
  const flagProblems: string[] = [];
  for (const entry of entries) {
    const { current, former } = optionsOf(command, entry);
    const typed = [current, ...former].filter(
      (o) => o !== undefined && command.getOptionValueSource(o.attributeName()) === 'cli',
    );
    if (typed.length > 1) {
      flagProblems.push(`${typed.map((o) => o!.long).join(' and ')} are one setting: give it once`);
      continue;
    }
    const option = typed[0];
    if (option === undefined) continue;
    const value = check(entry, given[option.attributeName()], option.long ?? entry.key, flagProblems);
    if (value !== undefined) fromFlags.set(entry, value);
  }
  if (flagProblems.length > 0) throw invalid(flagProblems);

  const options: Record<string, unknown> = {};
  const sources: Record<string, SettingSource> = {};
  for (const entry of entries) {
    const path = configPathOf(entry, name);
    const layers: [SettingSource, unknown][] = [
      ['flag', fromFlags.get(entry)],
      ['env', fromEnv.get(entry)],
      ['file', path === undefined ? undefined : getAt(file, path)],
      ['default', entry.default],
    ];
    const found = layers.find(([, value]) => value !== undefined);
    options[entry.key] = found?.[1];
    if (found !== undefined) sources[entry.key] = found[0];
  }
  return {
    options: options as CommandSettings<C>,
    sources: sources as ResolvedOptions<C>['sources'],
    config: file,
    ...(configFile === undefined ? {} : { configFile }),
  };
}

/** The `master.preprocess` settings among resolved options, or `undefined` when none is set. */
export function preprocessSettings(options: {
  readonly preprocessScale?: number | undefined;
  readonly preprocessMean?: readonly number[] | undefined;
  readonly preprocessStd?: readonly number[] | undefined;
  readonly preprocessFit?: ImageFit | undefined;
}): PreprocessConfig | undefined {
  const { preprocessScale: scale, preprocessMean: mean, preprocessStd: std, preprocessFit: fit } = options;
  if (scale === undefined && mean === undefined && std === undefined && fit === undefined) return undefined;
  return { scale, mean, std, fit };
}

/**
 * Checks that a required setting was given in some layer.
 *
 * @throws DinferError CONFIG_INVALID naming the flag, the variable and the config path that
 *   could provide it.
 */
export function requireSetting<C extends SettingCommand>(
  options: CommandSettings<C>,
  name: C,
  key: keyof CommandSettings<C> & string,
): void {
  if ((options as Record<string, unknown>)[key] !== undefined) return;
  const entry = settingsOf(name).find((x) => x.key === key);
  const flag = entry?.flag?.spelling.split(' ')[0];
  const path = entry && configPathOf(entry, name);
  const ways = [
    ...(flag === undefined ? [] : [`pass ${flag}`]),
    ...(entry?.env === undefined ? [] : [`set ${entry.env}`]),
    ...(path === undefined ? [] : [`set ${formatConfigPath(path)} in the config file`]),
  ];
  throw new DinferError(
    DinferErrorCode.CONFIG_INVALID,
    `no ${flag?.replace(/^--/, '') ?? key} given: ${ways.slice(0, -1).join(', ')} or ${ways.at(-1)}`,
    { details: { option: key } },
  );
}

/** Every `DINFER_*` variable the settings read, with their config paths (for docs and help). */
export function environmentVariables(): { env: string; path: string }[] {
  const seen = new Map<string, Set<string>>();
  for (const command of ['master', 'up', 'worker'] as const) {
    for (const entry of settingsOf(command)) {
      if (entry.env === undefined) continue;
      const paths = seen.get(entry.env) ?? new Set<string>();
      const path = configPathOf(entry, command);
      if (path) paths.add(formatConfigPath(path));
      seen.set(entry.env, paths);
    }
  }
  return [
    { env: CONFIG_ENV_VAR, path: '(the config file)' },
    ...[...seen].map(([env, paths]) => ({ env, path: [...paths].join(', ') })),
  ];
}

/** The keys of `C`'s settings that have a default in the table. */
export type DefaultedSetting<C extends SettingCommand> = {
  [K in keyof CommandSettings<C>]-?: undefined extends CommandSettings<C>[K] ? never : K;
}[keyof CommandSettings<C>] &
  string;

/** The table's default of setting `key` of `command` (the last layer of the precedence). */
export function settingDefault<C extends SettingCommand, K extends DefaultedSetting<C>>(
  command: C,
  key: K,
): SettingValue<C, K> {
  return settingsOf(command).find((entry) => entry.key === key)?.default as SettingValue<C, K>;
}

/** The type of setting `K` of command `C`. */
export type SettingValue<C extends SettingCommand, K extends string> = (CommandSettings<C> &
  Record<K, unknown>)[K];

/**
 * `{ key?: T | undefined }` for every setting of `C` but `omit`: the form the settings take
 * as options of `startMaster` / `startWorkerProcess` (left out: the table's default).
 */
export type SettingOptions<C extends SettingCommand, Omitted extends string = never> = {
  readonly [K in Exclude<keyof CommandSettings<C>, Omitted>]?: CommandSettings<C>[K] | undefined;
};
