/**
 * Loading a custom transport or scheduler from a module file: its default export is a factory
 * `(context) => Transport` (or `=> Scheduler`, or a promise of one), called with what the
 * process hands every extension (logger, metrics, ...).
 *
 * ```js
 * // my-transport.js
 * import { tcpTransport } from '@dinfer/transport-tcp';
 * export default (context) => tcpTransport({ ...context });
 * ```
 *
 * @module
 */
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { DinferError, DinferErrorCode } from '@dinfer/core';

/**
 * True for a value that names a module file rather than a built-in: it holds a path
 * separator or ends in `.js`, `.mjs` or `.cjs` (`./my-transport.js`, `/opt/x/sched.mjs`).
 */
export function isModulePath(value: string): boolean {
  return /[/\\]/.test(value) || /\.[cm]?js$/i.test(value);
}

/** How a value is named in messages: `undefined`, `a string`, `an object`, ... */
export function describeValue(value: unknown): string {
  if (value === undefined || value === null) return String(value);
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') {
    return typeof (value as { then?: unknown }).then === 'function' ? 'a promise' : 'an object';
  }
  return /^[aeiou]/.test(typeof value) ? `an ${typeof value}` : `a ${typeof value}`;
}

function fail(message: string, file: string, cause?: unknown): DinferError {
  return new DinferError(DinferErrorCode.INVALID_ARGUMENT, message, {
    details: { path: file },
    ...(cause === undefined ? {} : { cause }),
  });
}

/** What {@link loadFromModule} makes: its name in messages and how to recognise it. */
export interface ExtensionKind<T> {
  /** `Transport` or `Scheduler`. */
  readonly name: string;
  /** The guard of the extension point (`isTransport`, `isScheduler`). */
  readonly is: (value: unknown) => value is T;
}

/**
 * Imports the module at `file` (relative to `cwd`) and calls its default export with `context`.
 *
 * @throws DinferError INVALID_ARGUMENT naming the file when it is missing, cannot be imported,
 *   has no default export, exports something that is not a function, or when the factory throws
 *   or returns something that is not a `kind`.
 */
export async function loadFromModule<T, C>(
  file: string,
  kind: ExtensionKind<T>,
  context: C,
  cwd: string = process.cwd(),
): Promise<T> {
  const absolute = path.resolve(cwd, file);
  const what = `${kind.name.toLowerCase()} module ${absolute}`;
  try {
    if (!(await stat(absolute)).isFile()) throw new Error('not a file');
  } catch (cause) {
    throw fail(`${what} not found`, absolute, cause);
  }
  let module: { default?: unknown };
  try {
    module = (await import(pathToFileURL(absolute).href)) as { default?: unknown };
  } catch (cause) {
    throw fail(`cannot load the ${what}: ${(cause as Error).message}`, absolute, cause);
  }
  const factory = module.default;
  const shape = `(context) => ${kind.name}`;
  if (factory === undefined)
    throw fail(`the ${what} has no default export; export a function ${shape}`, absolute);
  if (typeof factory !== 'function') {
    throw fail(
      `the default export of the ${what} is ${describeValue(factory)}, not a function ${shape}`,
      absolute,
    );
  }
  let made: unknown;
  try {
    made = await (factory as (context: C) => unknown)(context);
  } catch (cause) {
    throw fail(
      `the ${kind.name} factory of ${absolute} failed: ${(cause as Error).message}`,
      absolute,
      cause,
    );
  }
  if (!kind.is(made)) {
    throw fail(
      `the ${kind.name} factory of ${absolute} returned ${describeValue(made)}, not a ${kind.name} (see is${kind.name} in @dinfer/core)`,
      absolute,
    );
  }
  return made;
}
