/**
 * Runs the `ip` and `tc` commands the network harness is made of: asynchronously while
 * tests run, synchronously while the process exits. A failure names the command line and
 * what it printed.
 *
 * @module
 */
import { execFile, spawnSync } from 'node:child_process';

/** Longest time one `ip`/`tc` command may take, in ms. */
const COMMAND_TIMEOUT_MS = 10_000;

/** A command that exited non-zero (or could not start). */
export class CommandError extends Error {
  override readonly name = 'CommandError';
  constructor(
    readonly command: readonly string[],
    readonly output: string,
    options?: ErrorOptions,
  ) {
    super(`\`${command.join(' ')}\` failed: ${output.trim() || 'no output'}`, options);
  }
}

/** Runs `command args...`; resolves with its stdout, rejects with a {@link CommandError}. */
export function run(command: string, args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { timeout: COMMAND_TIMEOUT_MS, encoding: 'utf8' }, (error, stdout, stderr) => {
      if (error)
        reject(new CommandError([command, ...args], `${stderr}${stdout}` || error.message, { cause: error }));
      else resolve(stdout);
    });
  });
}

/** Like {@link run} but resolves `undefined` instead of rejecting (for cleanup steps). */
export async function tryRun(command: string, args: readonly string[]): Promise<string | undefined> {
  try {
    return await run(command, args);
  } catch {
    return undefined;
  }
}

/** Runs `command args...` synchronously, ignoring failures (for cleanup while exiting). */
export function runSyncQuietly(command: string, args: readonly string[]): string {
  const result = spawnSync(command, args, { timeout: COMMAND_TIMEOUT_MS, encoding: 'utf8' });
  return result.status === 0 ? result.stdout : '';
}

/** The `ip` command. */
export const ip = (...args: string[]): Promise<string> => run('ip', args);

/** The `tc` command. */
export const tc = (...args: string[]): Promise<string> => run('tc', args);
