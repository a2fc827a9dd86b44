/**
 * The commander options of a command, made from the settings table: one option per setting
 * the command takes (with its parser, choices, default and help), hidden options for former
 * spellings, and `--config <file>`.
 *
 * @module
 */
import { type Command, Option } from 'commander';
import { formatConfigPath } from './issues.js';
import { configPathOf, forCommand, type Setting, type SettingCommand } from './setting.js';
import { SETTINGS } from './settings.js';

/** The environment variable naming the config file when `--config` is not given. */
export const CONFIG_ENV_VAR = 'DINFER_CONFIG';

/** The setting behind each option made here; former spellings map to theirs too. */
const settingOfOption = new WeakMap<Option, { readonly entry: Setting; readonly former: boolean }>();

/** The settings `command` takes, in table order. */
export function settingsOf(command: SettingCommand): Setting[] {
  return SETTINGS.filter((entry) => (entry.commands as readonly SettingCommand[]).includes(command));
}

/** Where else a setting comes from, for its help: `[DINFER_HTTP_PORT, master.http.port]`. */
function sources(entry: Setting, command: SettingCommand): string {
  const path = configPathOf(entry, command);
  const places = [entry.env, path && formatConfigPath(path)].filter((p): p is string => p !== undefined);
  return places.length === 0 ? '' : ` [${places.join(', ')}]`;
}

function makeOption(entry: Setting, spelling: string, command: SettingCommand, former: boolean): Option {
  const flag = entry.flag!;
  const defaultText = forCommand(entry.defaultText, command);
  let description = `${forCommand(entry.help, command) ?? ''}${sources(entry, command)}`;
  if (entry.default === undefined && defaultText !== undefined) description += ` (default: ${defaultText})`;
  const option = new Option(spelling, description);
  if (flag.parse) option.argParser(flag.parse);
  if (flag.choices) option.choices(flag.choices);
  if (former) option.hideHelp();
  else if (entry.default !== undefined && !spelling.startsWith('--no-'))
    option.default(entry.default, defaultText);
  settingOfOption.set(option, { entry, former });
  return option;
}

/** Adds `--config <file>` and an option for every setting `name` takes with a flag. */
export function withSettingOptions(command: Command, name: SettingCommand): Command {
  command.option(
    '--config <file>',
    `config file, YAML or JSON (default $${CONFIG_ENV_VAR}); flags and DINFER_* variables override it`,
  );
  for (const entry of settingsOf(name)) {
    if (entry.flag === undefined) continue;
    command.addOption(makeOption(entry, entry.flag.spelling, name, false));
    for (const former of entry.flag.former ?? []) {
      // A former spelling takes an argument exactly when the current one does.
      const argument = /\s[<[].*$/.exec(entry.flag.spelling)?.[0] ?? '';
      command.addOption(makeOption(entry, `${former}${argument}`, name, true));
    }
  }
  return command;
}

/** The option (current spelling) and the former-spelling options of `entry` on `command`. */
export function optionsOf(command: Command, entry: Setting): { current?: Option; former: Option[] } {
  const found: { current?: Option; former: Option[] } = { former: [] };
  for (const option of command.options) {
    const owner = settingOfOption.get(option);
    if (owner?.entry !== entry) continue;
    if (owner.former) found.former.push(option);
    else found.current = option;
  }
  return found;
}

/** The `--backend` option alone, for commands that take no config (`inspect`, `plan`, `split`). */
export function backendOption(): Option {
  const entry = SETTINGS.find((s) => s.key === 'backend')!;
  return new Option(
    entry.flag.spelling,
    `${entry.help} (default: ${entry.defaultText}, or $${entry.env})`,
  ).choices(entry.flag.choices);
}
