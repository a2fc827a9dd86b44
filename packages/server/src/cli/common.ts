/**
 * Pieces every `dinfer` command shares: the `--backend` option, model loading, argument
 * parsers and plain-text tables.
 *
 * @module
 */
import { access } from 'node:fs/promises';
import path from 'node:path';
import {
  type BackendInfo,
  type BackendName,
  DinferError,
  DinferErrorCode,
  describeBackend,
  initBackend,
  loadLayersModel,
} from '@dinfer/core';
import type * as tf from '@tensorflow/tfjs';
import { type Command, InvalidArgumentError, Option } from 'commander';

/** Where a command writes: stdout for results, stderr for diagnostics. */
export interface CliIo {
  out(text: string): void;
  err(text: string): void;
}

/** The process' stdout and stderr. */
export const processIo: CliIo = {
  out: (text) => {
    process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
  },
  err: (text) => {
    process.stderr.write(text.endsWith('\n') ? text : `${text}\n`);
  },
};

/** Options every command accepts. */
export interface CommonOptions {
  readonly backend?: BackendName;
}

/** Adds `--backend <name>` to a command. */
export function withBackendOption(command: Command): Command {
  return command.addOption(
    new Option('--backend <name>', 'TF.js backend (default: fastest available, or $DINFER_BACKEND)').choices([
      'tensorflow',
      'wasm',
      'cpu',
    ] satisfies BackendName[]),
  );
}

/** Initialises the backend and prints which one is active on stderr. */
export async function setupBackend(options: CommonOptions, io: CliIo): Promise<BackendInfo> {
  const info = await initBackend({ backend: options.backend });
  io.err(describeBackend(info));
  return info;
}

/** Loads a LayersModel from a model.json path (or an http(s) URL), with a clear error when missing. */
export async function loadModel(source: string): Promise<tf.LayersModel> {
  if (/^https?:\/\//.test(source)) return loadLayersModel(source);
  const file = path.resolve(source);
  try {
    await access(file);
  } catch (cause) {
    throw new DinferError(DinferErrorCode.MODEL_NOT_FOUND, `model file not found: ${file}`, {
      details: { path: file },
      cause,
    });
  }
  return loadLayersModel(file);
}

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

/** Parses a comma-separated list of integers: `12,40,81`. */
export function parseCutList(value: string): number[] {
  const parts = value.split(',').map((p) => p.trim());
  if (parts.length === 0 || parts.some((p) => !/^\d+$/.test(p))) {
    throw new InvalidArgumentError(`expected comma-separated layer indices like "12,40", got "${value}"`);
  }
  return parts.map(Number);
}

const byteUnits: Record<string, number> = {
  '': 1,
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
};

/** Parses a byte count: `50000000`, `50MB`, `1.5GiB` (kB/MB/GB are decimal, KiB/MiB/GiB binary). */
export function parseBytes(value: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(value);
  const unit = byteUnits[match?.[2]?.toLowerCase() ?? 'x'];
  if (!match || unit === undefined) {
    throw new InvalidArgumentError(`expected a byte count like 50000000, 50MB or 1.5GiB, got "${value}"`);
  }
  const bytes = Math.floor(Number(match[1]) * unit);
  if (bytes <= 0) throw new InvalidArgumentError(`expected a positive byte count, got "${value}"`);
  return bytes;
}

/** Formats a byte count for humans: `1.61 MB`. */
export function formatBytes(bytes: number): string {
  if (bytes < 1e3) return `${bytes} B`;
  if (bytes < 1e6) return `${(bytes / 1e3).toFixed(1)} kB`;
  if (bytes < 1e9) return `${(bytes / 1e6).toFixed(2)} MB`;
  return `${(bytes / 1e9).toFixed(2)} GB`;
}

/** Formats a shape, `null` dimensions as `?`: `[?,56,56,256]`. */
export function formatShape(shape: readonly (number | null)[]): string {
  return `[${shape.map((d) => (d === null ? '?' : String(d))).join(',')}]`;
}

/**
 * Renders rows as a left-aligned text table with a header; columns listed in `right` are
 * right-aligned (numbers).
 */
export function table(
  header: readonly string[],
  rows: readonly (readonly string[])[],
  right: readonly number[] = [],
): string {
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => (r[c] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((cell, c) => (right.includes(c) ? cell.padStart(widths[c]!) : cell.padEnd(widths[c]!)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}
