/**
 * What declares a setting of `dinfer master`, `dinfer worker` and `dinfer up`: one record with
 * its name, its command-line flag, its `DINFER_*` environment variable, its path in the config
 * file, its schema, its default and its help text. The table of them (`settings.ts`) generates
 * the commander options, the environment bindings, the config schema, the defaults and the
 * help, so no setting is spelled twice.
 *
 * @module
 */
import type { z } from 'zod';
import { isModulePath } from '../cluster/extension-module.js';

/** The commands that take settings. */
export type SettingCommand = 'master' | 'worker' | 'up';

/** A path in the config document: `['master', 'http', 'port']`. */
export type SettingPath = readonly [string, ...string[]];

/**
 * How the text of an environment variable is read before the schema checks it (text that is
 * no such value stays text, for the message): `name` is a case-insensitive choice (`WASM` reads
 * as `wasm`), `name-or-path` is such a choice or a module path (left as written).
 */
export type SettingText =
  | 'string'
  | 'strings'
  | 'name'
  | 'name-or-path'
  | 'number'
  | 'boolean'
  | 'numbers'
  | 'bytes';

/** The command-line side of a setting. */
export interface SettingFlag {
  /** Commander's flags: `--http-port <port>`, `--no-profile`, `--start-degraded`. */
  readonly spelling: string;
  /** Parses the flag's text; throw commander's `InvalidArgumentError` for a usage error (exit 2). */
  readonly parse?: ((text: string) => unknown) | undefined;
  /** The only values the flag accepts (a usage error otherwise). */
  readonly choices?: readonly string[] | undefined;
  /** Earlier spellings that still work (hidden from the help), e.g. `--degraded`. */
  readonly former?: readonly string[] | undefined;
}

/** Text per command, or the same for all. */
export type PerCommand<T> = T | { readonly [C in SettingCommand]?: T };

/** One setting; see the module documentation. */
export interface Setting<K extends string = string, C extends SettingCommand = SettingCommand, T = unknown> {
  /**
   * The setting's one name: the option of `startMaster`/`startWorkerProcess`, the key of the
   * resolved options. A command takes each name once.
   */
  readonly key: K;
  /** The commands that take it. */
  readonly commands: readonly C[];
  readonly flag?: SettingFlag | undefined;
  /** The `DINFER_*` environment variable. */
  readonly env?: string | undefined;
  /** Earlier names of the variable, read when {@link Setting.env} is not set. */
  readonly formerEnv?: readonly string[] | undefined;
  /**
   * Its paths in the config document: a command reads the one in its own section (`master` for
   * `master` and `up`, `worker` for `worker`), else the only one.
   */
  readonly config?: readonly SettingPath[] | undefined;
  /** An earlier name of the last key of the config path, still accepted in files. */
  readonly formerConfigKey?: string | undefined;
  /** What a value must be (the same for flags, variables and the file); may convert it. */
  readonly schema: z.ZodType<T>;
  /** How its environment variable's text is read. */
  readonly text: SettingText;
  /** The value when no layer gives one. */
  readonly default?: T | undefined;
  /** The default as the help shows it, when it is computed or better said in words. */
  readonly defaultText?: PerCommand<string> | undefined;
  /** A config-file string value that names a file, resolved against the file's folder. */
  readonly isFilePath?: ((value: string) => boolean) | undefined;
  /** One line of help. */
  readonly help: PerCommand<string>;
}

/** The value of `text` for `command`. */
export function forCommand<T>(text: PerCommand<T> | undefined, command: SettingCommand): T | undefined {
  if (typeof text === 'object' && text !== null) return (text as { [C in SettingCommand]?: T })[command];
  return text;
}

/** The config section a command reads its own settings from. */
export function sectionOf(command: SettingCommand): 'master' | 'worker' {
  return command === 'worker' ? 'worker' : 'master';
}

/** The config path `command` reads `entry` from, if it has one. */
export function configPathOf(entry: Setting, command: SettingCommand): SettingPath | undefined {
  const paths = entry.config ?? [];
  return paths.find((p) => p[0] === sectionOf(command)) ?? (paths.length === 1 ? paths[0] : undefined);
}

/** Reads an environment variable's text as `kind`; text that is no such value stays text, for the message. */
export function readEnvValue(text: string, kind: SettingText): unknown {
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
    case 'name-or-path':
      return isModulePath(text) ? text.trim() : text.trim().toLowerCase();
    case 'number':
      return number(text);
    case 'numbers':
      return text.split(',').map(number);
    case 'strings':
      return text
        .split(',')
        .map((t) => t.trim())
        .filter((t) => t.length > 0);
    case 'boolean': {
      const t = text.trim().toLowerCase();
      if (t === 'true' || t === '1' || t === 'yes' || t === 'on') return true;
      if (t === 'false' || t === '0' || t === 'no' || t === 'off') return false;
      return text;
    }
  }
}
