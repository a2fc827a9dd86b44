/**
 * Parsers of command-line values: a usage error (exit status 2, usage printed) for text that is
 * not such a value.
 *
 * @module
 */
import { InvalidArgumentError } from 'commander';
import { isModulePath } from '../cluster/extension-module.js';
import { measureBytes } from '../config/value-schemas.js';

/** Parses a positive integer command-line value. */
export function parsePositiveInt(value: string): number {
  const n = Number(value);
  if (!/^\s*\d+\s*$/.test(value) || !Number.isSafeInteger(n) || n < 1) {
    throw new InvalidArgumentError(`expected a positive integer, got "${value}"`);
  }
  return n;
}

/** Parses a stage count: a positive integer, or `auto` for the planner to choose. */
export function parseStages(value: string): number | 'auto' {
  return value.trim().toLowerCase() === 'auto' ? 'auto' : parsePositiveInt(value);
}

/** Parses a positive number (e.g. a link speed). */
export function parsePositiveNumber(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n <= 0) {
    throw new InvalidArgumentError(`expected a positive number, got "${value}"`);
  }
  return n;
}

/** Parses a number of milliseconds that may be 0. */
export function parseDelayMs(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < 0) {
    throw new InvalidArgumentError(`expected a number of milliseconds >= 0, got "${value}"`);
  }
  return n;
}

/** Parses an integer >= 0 (0 often switches something off). */
export function parseNonNegativeInt(value: string): number {
  const n = Number(value);
  if (!/^\s*\d+\s*$/.test(value) || !Number.isSafeInteger(n)) {
    throw new InvalidArgumentError(`expected an integer >= 0, got "${value}"`);
  }
  return n;
}

/** Parses a comma-separated list of names: `a.example,*.internal`. */
export function parseNameList(value: string): string[] {
  const names = value
    .split(',')
    .map((p) => p.trim())
    .filter((p) => p.length > 0);
  if (names.length === 0) throw new InvalidArgumentError(`expected comma-separated names, got "${value}"`);
  return names;
}

/** Parses a comma-separated list of integers: `12,40,81`. */
export function parseCutList(value: string): number[] {
  const parts = value.split(',').map((p) => p.trim());
  if (parts.length === 0 || parts.some((p) => !/^\d+$/.test(p))) {
    throw new InvalidArgumentError(`expected comma-separated layer indices like "12,40", got "${value}"`);
  }
  return parts.map(Number);
}

/** Parses a byte count: `50000000`, `50MB`, `1.5GiB` (kB/MB/GB are decimal, KiB/MiB/GiB binary). */
export function parseBytes(value: string): number {
  const bytes = measureBytes(value);
  if (bytes === undefined) {
    throw new InvalidArgumentError(`expected a byte count like 50000000, 50MB or 1.5GiB, got "${value}"`);
  }
  if (bytes <= 0) throw new InvalidArgumentError(`expected a positive byte count, got "${value}"`);
  return bytes;
}

/** A flag parser for a built-in name among `names` or a module path (see `isModulePath`). */
export function parseNameOrModule(what: string, names: readonly string[]): (value: string) => string {
  return (value) => {
    if (names.includes(value) || isModulePath(value)) return value;
    throw new InvalidArgumentError(
      `expected ${names.join(', ')} or the path of a module whose default export makes a ${what} (./my-${what.toLowerCase()}.js), got "${value}"`,
    );
  };
}
