/**
 * Pieces every `dinfer` command shares: the `--backend` option, model loading and plain-text
 * tables.
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
  loadLayersModel,
} from '@dinfer/core';
import { initBackend } from '@dinfer/core/node';
import type * as tf from '@tensorflow/tfjs';
import type { Command } from 'commander';
import { backendOption } from '../config/command-options.js';

/**
 * Where a command writes: `out` (stdout) for its results (URLs, addresses, plans, JSON, tables,
 * the ready banner), `err` (stderr) for progress, warnings, errors and logs.
 */
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

/** Adds `--backend <name>` (as the settings table declares it) to a command that takes no config. */
export function withBackendOption(command: Command): Command {
  return command.addOption(backendOption());
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
