/**
 * Reading a config file: YAML (`.yaml`, `.yml`) or JSON (`.json`), chosen by extension, checked
 * against the schema. Relative file paths inside it (`master.model`, `master.modelRepo`,
 * `master.labels`, `worker.cacheDir`: the settings with `isFilePath`) are relative to the
 * file's folder, so a config works from any directory.
 *
 * @module
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { DinferError, DinferErrorCode } from '@dinfer/core';
import { parseDocument } from 'yaml';
import { getAt, setAt } from './document-path.js';
import { describeIssues, formatConfigPath } from './issues.js';
import { adoptFormerKeys, configSchema, type DinferConfig } from './schema.js';
import type { Setting } from './setting.js';
import { SETTINGS } from './settings.js';

/** A config file, read and checked. */
export interface LoadedConfig {
  /** The path as given (for messages). */
  readonly file: string;
  readonly config: DinferConfig;
}

function invalid(message: string, file: string, cause?: unknown): DinferError {
  return new DinferError(DinferErrorCode.CONFIG_INVALID, message, {
    details: { file },
    ...(cause === undefined ? {} : { cause }),
  });
}

/** Parses the text of `file` as YAML or JSON by its extension. */
function parseText(text: string, file: string): unknown {
  const ext = path.extname(file).toLowerCase();
  if (ext === '.json') {
    try {
      return JSON.parse(text) as unknown;
    } catch (cause) {
      throw invalid(`${file}: not valid JSON: ${(cause as Error).message}`, file, cause);
    }
  }
  if (ext === '.yaml' || ext === '.yml') {
    const document = parseDocument(text, { uniqueKeys: true, prettyErrors: true });
    const first = document.errors[0];
    if (first !== undefined) {
      const at = first.linePos?.[0];
      const where = at ? `line ${at.line}, column ${at.col}: ` : '';
      const what = first.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
      throw invalid(`${file}: not valid YAML: ${where}${what}`, file, first);
    }
    return document.toJS() as unknown;
  }
  throw invalid(`${file}: unknown config file type "${ext || '(none)'}"; use .yaml, .yml or .json`, file);
}

/** Makes the document's relative file paths (see `Setting.isFilePath`) absolute against `base`, in place. */
function resolvePaths(config: DinferConfig, base: string): DinferConfig {
  for (const entry of SETTINGS as readonly Setting[]) {
    if (entry.isFilePath === undefined) continue;
    for (const at of entry.config ?? []) {
      const value = getAt(config, at);
      if (typeof value === 'string' && entry.isFilePath(value)) {
        setAt(config as Record<string, unknown>, at, path.resolve(base, value));
      }
    }
  }
  return config;
}

/**
 * Checks a parsed config document; `file` names it in messages.
 *
 * @throws DinferError CONFIG_INVALID listing every problem as
 *   `config.yaml: master.http.port: expected an integer between 0 and 65535, got "80a"`.
 */
export function parseConfig(document: unknown, file: string): DinferConfig {
  // An empty YAML file is a valid, empty config.
  const locate = (p: readonly PropertyKey[]) => (p.length === 0 ? file : `${file}: ${formatConfigPath(p)}`);
  const result = configSchema.safeParse(document ?? {}, { reportInput: true });
  const lines = result.success
    ? adoptFormerKeys(result.data as DinferConfig, locate)
    : describeIssues(result.error.issues, configSchema, locate);
  if (result.success && lines.length === 0) return result.data as DinferConfig;
  throw new DinferError(DinferErrorCode.CONFIG_INVALID, lines.join('\n  '), {
    details: { file, problems: lines },
  });
}

/**
 * Reads, parses and checks the config file at `file`.
 *
 * @throws DinferError CONFIG_INVALID when it is missing, unreadable, not YAML/JSON, or does not
 *   match the schema.
 */
export async function loadConfigFile(file: string): Promise<LoadedConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (cause) {
    const reason = (cause as NodeJS.ErrnoException).code === 'ENOENT' ? 'not found' : 'not readable';
    throw invalid(`config file ${reason}: ${path.resolve(file)}`, file, cause);
  }
  const config = parseConfig(parseText(text, file), file);
  return { file, config: resolvePaths(config, path.dirname(path.resolve(file))) };
}
