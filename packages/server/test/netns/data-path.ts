/**
 * The data path of a namespaced cluster: `relay` (the master forwards every activation from
 * stage to stage) or `direct` (workers send activations to the next stage themselves). The
 * failure tests run once per entry of {@link DATA_PATHS}.
 *
 * @module
 */
import { spawnSync } from 'node:child_process';
import { CLI_MAIN, requireBuiltCli } from '../e2e-helpers.js';

/** A data path of `dinfer master --data-path`. */
export type DataPath = 'relay' | 'direct';

/** The data paths the namespaced failure tests run with. */
export const DATA_PATHS: readonly DataPath[] = ['relay'];

const helpTexts = new Map<string, string>();

/** `dinfer <command> --help`, read once. */
function helpOf(command: 'master' | 'worker'): string {
  let text = helpTexts.get(command);
  if (text === undefined) {
    requireBuiltCli();
    const result = spawnSync(process.execPath, [CLI_MAIN, command, '--help'], { encoding: 'utf8' });
    text = `${result.stdout}${result.stderr}`;
    helpTexts.set(command, text);
  }
  return text;
}

/**
 * The flags that select `path` on `dinfer <command>`: `--data-path <path>` where the built
 * CLI has that flag; nothing for `relay` where it has not (relaying is then the only path).
 *
 * @throws Error for `direct` when the built CLI has no `--data-path` flag.
 */
export function dataPathArgs(command: 'master' | 'worker', path: DataPath): string[] {
  if (helpOf(command).includes('--data-path')) return ['--data-path', path];
  if (path === 'relay' || command === 'worker') return [];
  throw new Error(
    `the built dinfer CLI has no --data-path flag (${CLI_MAIN}): the ${path} data path cannot be tested`,
  );
}
