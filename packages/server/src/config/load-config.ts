/**
 * Reading a config file: YAML (`.yaml`, `.yml`) or JSON (`.json`), chosen by extension, checked
 * against the schema. Relative paths inside it (`master.model`, `master.modelRepo`,
 * `master.labels`, `worker.cacheDir`) are relative to the file's folder, so a config works from any directory.
 *
 * @module
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { DinferError, DinferErrorCode } from '@dinfer/core';
import { parseDocument } from 'yaml';
import { describeIssues, formatConfigPath } from './issues.js';
import { configSchema, type DinferConfig } from './schema.js';

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

const isUrl = (value: string) => /^[a-z][a-z0-9+.-]*:\/\//i.test(value);

/** Makes the document's relative paths absolute against `base`. */
function resolvePaths(config: DinferConfig, base: string): DinferConfig {
  const at = (value: string | undefined) =>
    value === undefined || isUrl(value) ? value : path.resolve(base, value);
  const master = config.master && {
    ...config.master,
    ...(config.master.model === undefined ? {} : { model: at(config.master.model) }),
    ...(config.master.modelRepo === undefined ? {} : { modelRepo: at(config.master.modelRepo) }),
    ...(config.master.labels === undefined ? {} : { labels: at(config.master.labels) }),
  };
  const worker = config.worker && {
    ...config.worker,
    ...(config.worker.cacheDir === undefined ? {} : { cacheDir: at(config.worker.cacheDir) }),
  };
  return {
    ...config,
    ...(master === undefined ? {} : { master }),
    ...(worker === undefined ? {} : { worker }),
  };
}

/**
 * Checks a parsed config document; `file` names it in messages.
 *
 * @throws DinferError CONFIG_INVALID listing every problem as
 *   `config.yaml: master.http.port: expected an integer between 0 and 65535, got "80a"`.
 */
export function parseConfig(document: unknown, file: string): DinferConfig {
  // An empty YAML file is a valid, empty config.
  const result = configSchema.safeParse(document ?? {}, { reportInput: true });
  if (result.success) return result.data;
  const lines = describeIssues(result.error.issues, configSchema, (p) =>
    p.length === 0 ? file : `${file}: ${formatConfigPath(p)}`,
  );
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
