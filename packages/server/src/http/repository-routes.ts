/**
 * The KServe v2 / Triton model repository extension:
 *
 * ```
 * GET  /v2/repository/index[?ready=true]      (also POST, body {"ready"?: true}, as Triton)
 *   -> [{"name","version","state":"READY"|"UNAVAILABLE"|"LOADING","reason"}]
 * POST /v2/repository/models/:name/load        body optional {"parameters": {"version": "2"}}
 *   -> {"name","version","state":"READY","action":"deployed"|"activated"|"unchanged","previous"?}
 * POST /v2/repository/models/:name/unload      body optional {"parameters": {"version": "2"}}
 *   -> {"name","version"?,"state":"UNAVAILABLE"}
 * ```
 *
 * `load` without a version loads the newest available version of the repository; a standby
 * version is re-activated without reading the disk (rollback). The answer comes once the
 * version serves new requests. Errors answer `{"error","code"}`: 400 for a malformed body,
 * 404 for an unknown model or version, 422 (`DINFER_ERR_ROLLOUT_FAILED`) when the version could
 * not be brought into service, with the reason (the previous version keeps serving), 503 while
 * that version is already loading; 403 for `load`/`unload` while model control is off, 401
 * without the admin token.
 *
 * @module
 */
import { DinferError, DinferErrorCode } from '@dinfer/core';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ModelRepository } from '../repository/model-repository.js';
import { type AdminCredential, requireAdmin } from './admin-token.js';

/** What the routes need from a {@link ModelRepository}. */
export type RepositoryRoutesTarget = Pick<ModelRepository, 'index' | 'load' | 'unload'> &
  Partial<Pick<ModelRepository, 'dir'>>;

/** Options of {@link registerRepositoryRoutes}. */
export interface RepositoryRoutesOptions {
  /**
   * The admin credential `load` and `unload` need; without one they answer 403 (model
   * control is off).
   */
  readonly modelControl?: AdminCredential | undefined;
  /** Takes the machine's paths out of the index reasons. */
  readonly redact?: ((text: string) => string) | undefined;
  /** Told of each model unloaded whole (no longer to be served). */
  readonly onUnloaded?: ((model: string) => void) | undefined;
}

const MODEL_CONTROL_OFF =
  'model control is off: start the master with --model-control and an admin token ' +
  '(--admin-token-file or DINFER_ADMIN_TOKEN) to load and unload models over HTTP';

function bad(message: string): DinferError {
  return new DinferError(DinferErrorCode.INVALID_ARGUMENT, message);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The body as an object; an absent or empty body is `{}`. */
function bodyObject(body: unknown, shape: string): Record<string, unknown> {
  if (body === undefined || body === null || body === '') return {};
  if (!isRecord(body)) throw bad(`body must be a JSON object ${shape}`);
  return body;
}

/**
 * The `version` of a load/unload body's `parameters` (a string, or a non-negative integer
 * taken as its digits); the `ignored` parameters are accepted and have no effect.
 */
function versionParameter(body: unknown, ignored: readonly string[]): string | undefined {
  const shape = '{"parameters": {"version": "<version>"}}';
  const object = bodyObject(body, shape);
  for (const k of Object.keys(object))
    if (k !== 'parameters') throw bad(`unknown body field "${k}"; expected ${shape}`);
  const { parameters } = object;
  if (parameters === undefined) return undefined;
  if (!isRecord(parameters)) throw bad(`"parameters" must be an object, as in ${shape}`);
  for (const k of Object.keys(parameters)) {
    if (k !== 'version' && !ignored.includes(k)) {
      throw bad(`unknown parameter "${k}"; accepted: ${['version', ...ignored].join(', ')}`);
    }
  }
  const { version } = parameters;
  if (version === undefined) return undefined;
  if (typeof version === 'number' && Number.isSafeInteger(version) && version >= 0) return String(version);
  if (
    typeof version !== 'string' ||
    version.length === 0 ||
    /[/\\]/.test(version) ||
    version.startsWith('.')
  ) {
    throw bad('"parameters.version" must be a version name such as "2"');
  }
  return version;
}

/** The `ready` flag of an index request (query `?ready=true` or body `{"ready": true}`). */
function readyFlag(request: FastifyRequest): boolean {
  const query = (request.query ?? {}) as Record<string, unknown>;
  const fromQuery = query.ready;
  if (fromQuery !== undefined) {
    if (fromQuery === 'true' || fromQuery === '1') return true;
    if (fromQuery === 'false' || fromQuery === '0') return false;
    throw bad('query parameter "ready" must be true or false');
  }
  if (request.method !== 'POST') return false;
  const body = bodyObject(request.body, '{"ready"?: true}');
  for (const k of Object.keys(body))
    if (k !== 'ready') throw bad(`unknown body field "${k}"; expected {"ready"?: true}`);
  if (body.ready === undefined) return false;
  if (typeof body.ready !== 'boolean') throw bad('"ready" must be true or false');
  return body.ready;
}

interface NameParams {
  Params: { name: string };
}

/**
 * Registers the repository routes on `app`. `load` and `unload` answer only with model
 * control on and the admin token (a bearer token, which no page of another site can send
 * without a preflight this server does not answer).
 */
export function registerRepositoryRoutes(
  app: FastifyInstance,
  repository: RepositoryRoutesTarget,
  options: RepositoryRoutesOptions = {},
): void {
  const redact = options.redact ?? ((text: string) => text);
  const index = async (request: FastifyRequest) =>
    (await repository.index({ ready: readyFlag(request) })).map((entry) => ({
      ...entry,
      reason: redact(entry.reason),
    }));
  app.get('/v2/repository/index', index);
  app.post('/v2/repository/index', index);

  const control = options.modelControl;
  const onRequest = async (request: FastifyRequest) => {
    if (control === undefined) throw new DinferError(DinferErrorCode.FORBIDDEN, MODEL_CONTROL_OFF);
    requireAdmin(request, control, 'model control');
  };

  app.post<NameParams>('/v2/repository/models/:name/load', { onRequest }, async (request) => {
    const version = versionParameter(request.body, []);
    const outcome = await repository.load(request.params.name, { version });
    return {
      name: outcome.name,
      version: outcome.version,
      state: 'READY',
      action: outcome.action,
      ...(outcome.previous === undefined ? {} : { previous: outcome.previous }),
    };
  });

  app.post<NameParams>('/v2/repository/models/:name/unload', { onRequest }, async (request) => {
    const version = versionParameter(request.body, ['unload_dependents']);
    const outcome = await repository.unload(request.params.name, { version });
    if (version === undefined) options.onUnloaded?.(outcome.name);
    return { ...outcome, state: 'UNAVAILABLE' };
  });
}
