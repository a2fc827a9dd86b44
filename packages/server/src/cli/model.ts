/**
 * `dinfer model list|load|unload --url http://HOST:PORT`: manages the model versions of a
 * running master through its repository API (`/v2/repository/*`).
 *
 * ```
 * dinfer model list --url http://127.0.0.1:8080
 * dinfer model load mnist --version 2 --url http://127.0.0.1:8080   # hot swap (or rollback)
 * dinfer model unload mnist --version 1 --url http://127.0.0.1:8080
 * ```
 *
 * `load` and `unload` need model control on the master and its admin token
 * (`--admin-token-file`, `$DINFER_ADMIN_TOKEN_FILE` or `$DINFER_ADMIN_TOKEN`). A failed
 * request exits with status 1 and prints the server's error message.
 *
 * @module
 */
import { DinferError, DinferErrorCode } from '@dinfer/core';
import { Command, InvalidArgumentError } from 'commander';
import { readTokenFile } from '../config/secrets.js';
import type { LoadOutcome, RepositoryIndexEntry } from '../repository/model-repository.js';
import { parsePositiveInt } from './arguments.js';
import { type CliIo, table } from './common.js';

/** Environment variable with the default `--url`. */
export const MASTER_URL_ENV = 'DINFER_URL';

/** `--url` when neither the flag nor {@link MASTER_URL_ENV} gives one. */
export const DEFAULT_MASTER_URL = 'http://127.0.0.1:8080';

/** Environment variable with the admin token (model control needs it). */
export const ADMIN_TOKEN_ENV = 'DINFER_ADMIN_TOKEN';

/** Environment variable with the file of the admin token, when `--admin-token-file` is not given. */
export const ADMIN_TOKEN_FILE_ENV = 'DINFER_ADMIN_TOKEN_FILE';

interface ModelCommandOptions {
  readonly url?: string;
  readonly version?: string;
  readonly timeout: number;
  readonly adminTokenFile?: string;
}

/** The admin token to send: `--admin-token-file`, else `$DINFER_ADMIN_TOKEN_FILE`, else `$DINFER_ADMIN_TOKEN`. */
async function adminTokenOf(options: ModelCommandOptions): Promise<string | undefined> {
  const file = options.adminTokenFile ?? (process.env[ADMIN_TOKEN_FILE_ENV] || undefined);
  if (file !== undefined) return readTokenFile(file, 'the admin token');
  return process.env[ADMIN_TOKEN_ENV] || undefined;
}

const KNOWN_CODES = new Set<string>(Object.values(DinferErrorCode));

function parseUrl(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new InvalidArgumentError(`expected a URL like ${DEFAULT_MASTER_URL}, got "${value}"`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new InvalidArgumentError(`expected an http(s) URL, got "${value}"`);
  }
  return url.href.replace(/\/+$/, '');
}

/**
 * Sends one JSON request to the master and resolves with the parsed answer.
 *
 * `adminToken` is sent as the bearer token (model control, restricted status routes).
 *
 * @throws DinferError with the server's code and message for an error answer; TRANSPORT_CONNECT
 *   when the master cannot be reached; TIMEOUT after `timeoutMs`.
 */
export async function masterRequest<T>(
  base: string,
  method: 'GET' | 'POST',
  route: string,
  body: unknown,
  timeoutMs: number,
  adminToken?: string,
): Promise<T> {
  const url = `${base}${route}`;
  let response: Response;
  const headers: Record<string, string> = {
    ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    ...(adminToken === undefined ? {} : { authorization: `Bearer ${adminToken}` }),
  };
  try {
    response = await fetch(url, {
      method,
      signal: AbortSignal.timeout(timeoutMs),
      headers,
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  } catch (error) {
    if (error instanceof Error && error.name === 'TimeoutError') {
      throw new DinferError(DinferErrorCode.TIMEOUT, `${method} ${url}: no answer within ${timeoutMs} ms`);
    }
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    throw new DinferError(
      DinferErrorCode.TRANSPORT_CONNECT,
      `cannot reach the master at ${base}: ${cause?.code ?? cause?.message ?? (error as Error).message}`,
      { cause: error, details: { url } },
    );
  }
  const text = await response.text();
  let parsed: unknown;
  try {
    parsed = text === '' ? undefined : JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  if (!response.ok) {
    const answer = (parsed ?? {}) as { error?: unknown; code?: unknown };
    const message = typeof answer.error === 'string' ? answer.error : text || response.statusText;
    const code =
      typeof answer.code === 'string' && KNOWN_CODES.has(answer.code)
        ? (answer.code as DinferErrorCode)
        : DinferErrorCode.REMOTE;
    throw new DinferError(code, `${message} (HTTP ${response.status})`, {
      details: { url, status: response.status },
    });
  }
  if (parsed === undefined) {
    throw new DinferError(DinferErrorCode.PROTOCOL, `${method} ${url}: the answer is not JSON`, {
      details: { url },
    });
  }
  return parsed as T;
}

function urlOf(options: ModelCommandOptions): string {
  const fromEnv = process.env[MASTER_URL_ENV];
  if (options.url !== undefined) return options.url;
  if (fromEnv) {
    try {
      return parseUrl(fromEnv);
    } catch (error) {
      throw new DinferError(DinferErrorCode.CONFIG_INVALID, `${MASTER_URL_ENV}: ${(error as Error).message}`);
    }
  }
  return DEFAULT_MASTER_URL;
}

/** Renders the repository index as a table. */
export function formatIndex(entries: readonly RepositoryIndexEntry[]): string {
  if (entries.length === 0) return 'no models';
  return table(
    ['MODEL', 'VERSION', 'STATE', 'REASON'],
    entries.map((e) => [e.name, e.version, e.state, e.reason]),
  );
}

/** One line about a load's outcome. */
export function formatLoad(outcome: LoadOutcome): string {
  const was = outcome.previous === undefined ? '' : ` (was ${outcome.previous})`;
  switch (outcome.action) {
    case 'unchanged':
      return `${outcome.name}: version ${outcome.version} already active`;
    case 'activated':
      return `${outcome.name}: version ${outcome.version} active again${was}`;
    case 'deployed':
      return `${outcome.name}: version ${outcome.version} loaded and active${was}`;
  }
}

function withConnection(command: Command): Command {
  return command
    .option(
      '--url <url>',
      `the master's HTTP API (default $${MASTER_URL_ENV} or ${DEFAULT_MASTER_URL})`,
      parseUrl,
    )
    .option('--timeout <ms>', 'give up waiting for the answer after this long', parsePositiveInt, 600_000)
    .option(
      '--admin-token-file <file>',
      `file holding the admin token load and unload need (default $${ADMIN_TOKEN_FILE_ENV}, else the token in $${ADMIN_TOKEN_ENV})`,
    );
}

const versionBody = (version: string | undefined) =>
  version === undefined ? {} : { parameters: { version } };

/** The `dinfer model` command with `list`, `load` and `unload`. */
export function modelCommand(io: CliIo): Command {
  const model = new Command('model').description(
    "list, load (hot swap, rollback) and unload a running master's model versions",
  );
  model.addCommand(
    withConnection(new Command('list'))
      .description('list every model version the master knows: in its repository and loaded')
      .option('--ready', 'only the versions serving requests')
      .action(async (options: ModelCommandOptions & { ready?: boolean }) => {
        const route = `/v2/repository/index${options.ready ? '?ready=true' : ''}`;
        const entries = await masterRequest<RepositoryIndexEntry[]>(
          urlOf(options),
          'GET',
          route,
          undefined,
          options.timeout,
          await adminTokenOf(options),
        );
        io.out(formatIndex(entries));
      }),
  );
  model.addCommand(
    withConnection(new Command('load'))
      .description('load a version (default: the newest in the repository) and make it active')
      .argument('<name>', 'model name')
      .option('--version <version>', 'the version to load or re-activate')
      .action(async (name: string, options: ModelCommandOptions) => {
        const outcome = await masterRequest<LoadOutcome>(
          urlOf(options),
          'POST',
          `/v2/repository/models/${encodeURIComponent(name)}/load`,
          versionBody(options.version),
          options.timeout,
          await adminTokenOf(options),
        );
        io.out(formatLoad(outcome));
      }),
  );
  model.addCommand(
    withConnection(new Command('unload'))
      .description('unload one version (not the active one while others exist), or the whole model')
      .argument('<name>', 'model name')
      .option('--version <version>', 'the version to unload (default: the whole model)')
      .action(async (name: string, options: ModelCommandOptions) => {
        await masterRequest<unknown>(
          urlOf(options),
          'POST',
          `/v2/repository/models/${encodeURIComponent(name)}/unload`,
          versionBody(options.version),
          options.timeout,
          await adminTokenOf(options),
        );
        io.out(
          options.version === undefined
            ? `${name}: unloaded`
            : `${name}: version ${options.version} unloaded`,
        );
      }),
  );
  return model;
}
