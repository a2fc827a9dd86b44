/**
 * Reads a model repository laid out the Triton / TF Serving way:
 *
 * ```
 * <repo>/<model-name>/[config.json] [labels.json | labels.txt]
 * <repo>/<model-name>/<version>/model.json + weight files
 *                               [config.json] [labels.json | labels.txt]
 * ```
 *
 * A version directory's own `config.json` and labels win over the model directory's. Names
 * starting with `.` are skipped, so a version can be written under a hidden name and renamed
 * into place when complete. Scanning reads only `model.json`, `config.json` and file sizes:
 * a version whose `model.json` is missing or broken, whose weight files are missing or of the
 * wrong size, or whose config is invalid is listed as unavailable with the reason.
 *
 * @module
 */
import type { Stats } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { checkWeightBytes, DinferError, DinferErrorCode, parseModelJson } from '@dinfer/core';
import {
  mergeVersionConfig,
  readVersionConfig,
  VERSION_CONFIG_FILE,
  type VersionConfig,
} from './version-config.js';
import { compareVersions } from './version-order.js';

/** The file every version directory must hold. */
export const MODEL_JSON_FILE = 'model.json';

/** Label file names looked for, in this order. */
export const LABEL_FILES = ['labels.json', 'labels.txt'] as const;

/** One version directory of a repository model. */
export interface RepositoryVersion {
  readonly model: string;
  readonly version: string;
  /** Absolute path of the version directory. */
  readonly dir: string;
  /** Absolute path of its `model.json`. */
  readonly modelJson: string;
  /** False when the version cannot be loaded as it is; `reason` says why. */
  readonly available: boolean;
  readonly reason?: string | undefined;
  /** The model directory's `config.json` merged with the version's. */
  readonly config: VersionConfig;
  /** The labels file that applies (the version's, else the model's), if any. */
  readonly labelsFile?: string | undefined;
  /** Names, sizes and modification times of the version's files; changes while it is written. */
  readonly fingerprint: string;
}

/** One model directory of a repository. */
export interface RepositoryModel {
  readonly name: string;
  readonly dir: string;
  /** Every version directory, oldest first (see version-order.ts). */
  readonly versions: readonly RepositoryVersion[];
  /** The newest available version: the one served by default. */
  readonly latest?: string | undefined;
}

/** What {@link scanRepository} found. */
export interface RepositoryScan {
  /** Absolute path of the repository. */
  readonly dir: string;
  /** Models by name order. */
  readonly models: readonly RepositoryModel[];
  /** Things that were skipped or could not be read, one sentence each. */
  readonly warnings: readonly string[];
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

async function statOrUndefined(file: string): Promise<Stats | undefined> {
  try {
    return await stat(file);
  } catch {
    return undefined;
  }
}

async function firstFile(dir: string, names: readonly string[]): Promise<string | undefined> {
  for (const name of names) {
    const file = path.join(dir, name);
    if ((await statOrUndefined(file))?.isFile()) return file;
  }
  return undefined;
}

/** Checks `model.json` and the sizes of the weight files it names; resolves to a reason or `undefined`. */
async function checkArtifacts(modelJson: string): Promise<string | undefined> {
  let text: string;
  try {
    text = await readFile(modelJson, 'utf8');
  } catch (error) {
    return `cannot read ${MODEL_JSON_FILE}: ${message(error)}`;
  }
  try {
    const json = parseModelJson(text, modelJson);
    const dir = path.dirname(modelJson);
    const groupBytes: number[] = [];
    for (const group of json.weightsManifest) {
      let bytes = 0;
      for (const shard of group.paths) {
        const info = await statOrUndefined(path.join(dir, shard));
        if (!info?.isFile()) return `weight file ${shard} is missing`;
        bytes += info.size;
      }
      groupBytes.push(bytes);
    }
    checkWeightBytes(json, groupBytes, modelJson);
    return undefined;
  } catch (error) {
    return message(error);
  }
}

async function fingerprintOf(dir: string): Promise<string> {
  const entries = await readdir(dir, { withFileTypes: true });
  const parts: string[] = [];
  for (const entry of entries.sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const info = await statOrUndefined(path.join(dir, entry.name));
    if (info) parts.push(`${entry.name}:${info.size}:${info.mtimeMs}`);
  }
  return parts.join('|');
}

async function scanVersion(
  model: string,
  version: string,
  dir: string,
  modelConfig: VersionConfig | undefined,
  modelConfigError: string | undefined,
  modelLabels: string | undefined,
): Promise<RepositoryVersion> {
  const modelJson = path.join(dir, MODEL_JSON_FILE);
  const fingerprint = await fingerprintOf(dir);
  const labelsFile = (await firstFile(dir, LABEL_FILES)) ?? modelLabels;
  const base = { model, version, dir, modelJson, fingerprint, labelsFile };
  let config: VersionConfig = modelConfig ?? {};
  let reason = modelConfigError;
  if (reason === undefined) {
    const configFile = await firstFile(dir, [VERSION_CONFIG_FILE]);
    try {
      if (configFile) config = mergeVersionConfig(modelConfig, await readVersionConfig(configFile));
    } catch (error) {
      reason = message(error);
    }
  }
  if (reason === undefined && !(await statOrUndefined(modelJson))?.isFile()) {
    reason = `no ${MODEL_JSON_FILE} in ${dir}`;
  }
  reason ??= await checkArtifacts(modelJson);
  return reason === undefined
    ? { ...base, config, available: true }
    : { ...base, config, available: false, reason };
}

async function scanModel(name: string, dir: string, warnings: string[]): Promise<RepositoryModel> {
  let modelConfig: VersionConfig | undefined;
  let modelConfigError: string | undefined;
  const configFile = await firstFile(dir, [VERSION_CONFIG_FILE]);
  if (configFile) {
    try {
      modelConfig = await readVersionConfig(configFile);
    } catch (error) {
      modelConfigError = message(error);
      warnings.push(`model "${name}": ${modelConfigError}`);
    }
  }
  const modelLabels = await firstFile(dir, LABEL_FILES);
  const entries = await readdir(dir, { withFileTypes: true });
  const names = entries
    .filter((e) => e.isDirectory() && !e.name.startsWith('.'))
    .map((e) => e.name)
    .sort(compareVersions);
  const versions: RepositoryVersion[] = [];
  for (const version of names) {
    const scanned = await scanVersion(
      name,
      version,
      path.join(dir, version),
      modelConfig,
      modelConfigError,
      modelLabels,
    );
    if (!scanned.available && modelConfigError === undefined) {
      warnings.push(`model "${name}" version "${version}" is unavailable: ${scanned.reason}`);
    }
    versions.push(scanned);
  }
  if (versions.length === 0) warnings.push(`model "${name}" has no version directories (e.g. ${name}/1/)`);
  const latest = versions.filter((v) => v.available).at(-1)?.version;
  return latest === undefined ? { name, dir, versions } : { name, dir, versions, latest };
}

/**
 * Scans a model repository.
 *
 * @throws DinferError MODEL_NOT_FOUND when `dir` does not exist; INVALID_ARGUMENT when it is
 *   not a directory; MODEL_IO when it cannot be listed.
 */
export async function scanRepository(dir: string): Promise<RepositoryScan> {
  const root = path.resolve(dir);
  const info = await statOrUndefined(root);
  if (!info) {
    throw new DinferError(DinferErrorCode.MODEL_NOT_FOUND, `model repository not found: ${root}`, {
      details: { path: root },
    });
  }
  if (!info.isDirectory()) {
    throw new DinferError(
      DinferErrorCode.INVALID_ARGUMENT,
      `model repository ${root} is not a directory (expected <repo>/<model>/<version>/model.json)`,
      { details: { path: root } },
    );
  }
  let entries: import('node:fs').Dirent[];
  try {
    entries = await readdir(root, { withFileTypes: true });
  } catch (error) {
    throw new DinferError(
      DinferErrorCode.MODEL_IO,
      `cannot list model repository ${root}: ${message(error)}`,
      {
        details: { path: root },
        cause: error,
      },
    );
  }
  const warnings: string[] = [];
  const models: RepositoryModel[] = [];
  const names = entries
    .filter((e) => e.isDirectory() && !e.name.startsWith('.'))
    .map((e) => e.name)
    .sort();
  for (const name of names) models.push(await scanModel(name, path.join(root, name), warnings));
  for (const e of entries) {
    if (!e.isDirectory() && !e.name.startsWith('.'))
      warnings.push(`skipped ${e.name}: not a model directory`);
  }
  return { dir: root, models, warnings };
}
