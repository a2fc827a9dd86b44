/**
 * The `dinfer` command-line program: its commands, and how errors become exit codes.
 *
 * @module
 */
import { createRequire } from 'node:module';
import { isDinferError } from '@dinfer/core';
import { Command, CommanderError } from 'commander';
import { benchCommand } from './bench.js';
import { type CliIo, processIo } from './common.js';
import { inspectCommand } from './inspect.js';
import { masterCommand } from './master.js';
import { modelCommand } from './model.js';
import { planCommand } from './plan.js';
import { splitCommand } from './split.js';
import { upCommand } from './up.js';
import { workerCommand } from './worker.js';

/** Exit status of a successful run. */
export const EXIT_OK = 0;
/** Exit status when a command fails (a DinferError or an unexpected error). */
export const EXIT_FAILURE = 1;
/** Exit status for bad arguments (usage printed). */
export const EXIT_USAGE = 2;

function packageVersion(): string {
  try {
    const require = createRequire(import.meta.url);
    return (require('../../package.json') as { version: string }).version;
  } catch {
    return '0.0.0';
  }
}

/** Builds the `dinfer` program writing to `io`. Errors are thrown, never `process.exit`ed. */
export function createProgram(io: CliIo = processIo): Command {
  const program = new Command('dinfer')
    .description('distributed pipeline-parallel inference of TensorFlow.js LayersModels')
    .version(packageVersion())
    // `--version` after a command is that command's own (`dinfer model load m --version 2`).
    .enablePositionalOptions()
    .showHelpAfterError()
    .exitOverride()
    .configureOutput({
      writeOut: (text) => io.out(text),
      writeErr: (text) => io.err(text),
    });
  for (const command of [
    upCommand(io),
    masterCommand(io),
    workerCommand(io),
    inspectCommand(io),
    planCommand(io),
    splitCommand(io),
    benchCommand(io),
    modelCommand(io),
  ]) {
    program.addCommand(command.copyInheritedSettings(program));
    // Nested commands (`model list`) get the same output and exit handling.
    for (const sub of command.commands) sub.copyInheritedSettings(command);
  }
  return program;
}

function describeError(error: unknown): string {
  if (isDinferError(error)) return `error: ${error.code}: ${error.message}`;
  return `error: ${error instanceof Error ? error.message : String(error)}`;
}

function debugDetails(error: unknown): string {
  const parts: string[] = [];
  let current: unknown = error;
  while (current !== undefined && current !== null) {
    if (current instanceof Error) {
      parts.push(current.stack ?? current.message);
      if (isDinferError(current) && Object.keys(current.details).length > 0) {
        parts.push(`details: ${JSON.stringify(current.details)}`);
      }
      current = current.cause;
      if (current !== undefined) parts.push('caused by:');
    } else {
      parts.push(String(current));
      break;
    }
  }
  return parts.join('\n');
}

/**
 * Runs the CLI on `argv` (as in `process.argv`) and resolves to the exit status:
 * 0 on success, 1 for a failed command (`error: <code>: <message>` on stderr, the stack too
 * when `DINFER_DEBUG=1`), 2 for bad arguments (with usage).
 */
export async function runCli(argv: readonly string[], io: CliIo = processIo): Promise<number> {
  const program = createProgram(io);
  try {
    await program.parseAsync([...argv]);
    return EXIT_OK;
  } catch (error) {
    if (error instanceof CommanderError) {
      if (error.code === 'commander.helpDisplayed' || error.code === 'commander.version') return EXIT_OK;
      return EXIT_USAGE;
    }
    io.err(describeError(error));
    if (process.env.DINFER_DEBUG === '1') io.err(debugDetails(error));
    return EXIT_FAILURE;
  }
}
