/**
 * The kinds of values settings take, as zod schemas whose messages say what was expected
 * (`expected an integer between 0 and 65535`), and the parsers of their flags.
 *
 * @module
 */
import { z } from 'zod';
import { isModulePath } from '../cluster/extension-module.js';

const BYTE_UNITS: Readonly<Record<string, number>> = {
  '': 1,
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
};

/** The bytes `50000000`, `50MB` or `1.5GiB` stand for (rounded down); `undefined` when the text is none of these forms. */
export function measureBytes(text: string): number | undefined {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  const unit = BYTE_UNITS[match?.[2]?.toLowerCase() ?? 'x'];
  if (!match || unit === undefined) return undefined;
  return Math.floor(Number(match[1]) * unit);
}

/** Reads `50000000`, `"50MB"` or `"1.5GiB"` as a positive byte count; `undefined` when it is none. */
export function readByteCount(value: unknown): number | undefined {
  const bytes =
    typeof value === 'number' ? value : typeof value === 'string' ? measureBytes(value) : undefined;
  return bytes !== undefined && Number.isSafeInteger(bytes) && bytes > 0 ? bytes : undefined;
}

const int = (min: number, max: number, expected: string) =>
  z.int({ error: expected }).min(min, { error: expected }).max(max, { error: expected });

/** A TCP/UDP port, 0 included (pick one). */
export const port = () => int(0, 65535, 'expected an integer between 0 and 65535');

/** A positive integer. */
export const positiveInt = () => int(1, Number.MAX_SAFE_INTEGER, 'expected a positive integer');

/** An integer >= 0. */
export const nonNegativeInt = () => int(0, Number.MAX_SAFE_INTEGER, 'expected an integer >= 0');

/** A finite number >= 1 (a ratio). */
export const ratio = () =>
  z
    .number({ error: 'expected a number >= 1' })
    .min(1, { error: 'expected a number >= 1' })
    .refine(Number.isFinite, { error: 'expected a number >= 1' });

/** A non-empty list of non-empty strings (`[a.example, "*.internal"]`). */
export const textList = () =>
  z
    .array(z.string({ error: 'expected a string' }).min(1, { error: 'expected a non-empty string' }), {
      error: 'expected a list of names',
    })
    .min(1, { error: 'expected a list of names' });

/** A non-empty string. */
export const text = () =>
  z.string({ error: 'expected a string' }).min(1, { error: 'expected a non-empty string' });

/** `true` or `false`. */
export const flag = () => z.boolean({ error: 'expected true or false' });

/** One of `values`. */
export const oneOf = <const T extends readonly [string, ...string[]]>(values: T) =>
  z.enum(values, { error: `expected one of ${values.join(', ')}` });

/** A finite number. */
export const finite = (expected: string) =>
  z.number({ error: expected }).refine(Number.isFinite, { error: expected });

/** A finite number >= 0 of milliseconds. */
export const delayMs = () =>
  z
    .number({ error: 'expected a number of milliseconds >= 0' })
    .min(0, { error: 'expected a number of milliseconds >= 0' })
    .refine(Number.isFinite, { error: 'expected a number of milliseconds >= 0' });

/** A positive finite number of seconds. */
export const seconds = () =>
  z
    .number({ error: 'expected a positive number of seconds' })
    .positive({ error: 'expected a positive number of seconds' })
    .refine(Number.isFinite, { error: 'expected a positive number of seconds' });

/** A byte count: a positive integer, or a string with a unit (`64MB`, `1.5GiB`); parsed to bytes. */
export const bytes = () =>
  z
    .union([z.number(), z.string()], {
      error: 'expected a byte count like 50000000, "50MB" or "1.5GiB"',
    })
    .transform((value, ctx) => {
      const n = readByteCount(value);
      if (n === undefined) {
        ctx.addIssue({
          code: 'custom',
          input: value,
          message: 'expected a byte count like 50000000, "50MB" or "1.5GiB"',
        });
        return z.NEVER;
      }
      return n;
    });

/** One number, or one per channel (`[0.485, 0.456, 0.406]`); read as a list. */
export const perChannel = (expected: string) =>
  z
    .union([finite(expected), z.array(finite(expected)).min(1)], {
      error: `${expected} or a list of them, one per channel`,
    })
    .transform((v) => (Array.isArray(v) ? v : [v]));

/** Layer indices to cut at: `[57, 120]`. */
export const cutList = () =>
  z.array(positiveInt(), { error: 'expected a list of layer indices like [57, 120]' }).min(1);

/**
 * One of the built-in `names`, or a module path (`./my-transport.js`) whose default export
 * makes one. The message names the built-in choices.
 */
export const nameOrModule = <const T extends readonly [string, ...string[]]>(names: T) => {
  const expected = `expected one of ${names.join(', ')}`;
  return z
    .string({ error: expected })
    .refine((value) => (names as readonly string[]).includes(value) || isModulePath(value), {
      error: expected,
    });
};
