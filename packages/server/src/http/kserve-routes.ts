/**
 * The KServe v2 / Open Inference Protocol REST routes:
 *
 * - `GET  /v2` server metadata; `GET /v2/health/live`, `GET /v2/health/ready`
 * - `GET  /v2/models/:name[/versions/:version]` model metadata, `.../ready` model readiness
 * - `POST /v2/models/:name[/versions/:version]/infer`, JSON or binary (kserve-binary.ts)
 *
 * Errors answer `{"error": "..."}` with the status of errors-to-http.ts.
 *
 * @module
 */
import type { InferenceService, ServiceHealth } from '@dinfer/core';
import type { FastifyInstance, FastifyReply, FastifyRequest, onRequestAsyncHookHandler } from 'fastify';
import { inferForRequest } from './infer-for-request.js';
import type { JsonLimits } from './json-limits.js';
import {
  BINARY_TENSOR_DATA_EXTENSION,
  readV2Body,
  requireOctetStreamForBinary,
  sendV2Answer,
} from './kserve-binary.js';
import { parseV2Request, v2ModelMetadata, v2Response } from './kserve-codec.js';
import { findServedModel } from './served-models.js';
import type { ServedModelsWatch } from './served-models-readiness.js';

/** The service's health; a throwing `health()` counts as not live and not ready. */
function healthOf(service: InferenceService): ServiceHealth {
  try {
    return service.health();
  } catch {
    return { live: false, ready: false, degraded: false };
  }
}

function notReady(reply: FastifyReply, what: string, health: ServiceHealth, why?: string) {
  return reply
    .code(503)
    .header('retry-after', '1')
    .send({ error: `${what} is not ready${why === undefined ? '' : `: ${why}`}`, ...health });
}

/** Route parameters of the model routes. */
interface ModelParams {
  Params: { name: string; version?: string };
}

/** Options of {@link registerKServe}. */
export interface KServeRoutesOptions {
  readonly serverName: string;
  readonly version: string;
  readonly timeoutMs?: number | undefined;
  /** The bounds of JSON bodies, also applied to the JSON part of binary requests. */
  readonly jsonLimits?: JsonLimits | undefined;
  /** The models that should be served: readiness is false while one is not. */
  readonly servedModels?: ServedModelsWatch | undefined;
  /** The rate limit hook of the infer routes, if any. */
  readonly limit?: onRequestAsyncHookHandler | undefined;
}

/** Registers the v2 routes on `app`. */
export function registerKServe(
  app: FastifyInstance,
  service: InferenceService,
  options: KServeRoutesOptions,
): void {
  app.get('/v2', async () => ({
    name: options.serverName,
    version: options.version,
    extensions: [BINARY_TENSOR_DATA_EXTENSION],
  }));

  app.get('/v2/health/live', async (_request, reply) => {
    const health = healthOf(service);
    return health.live ? { live: true } : reply.code(503).send({ error: 'server is not live', live: false });
  });

  app.get('/v2/health/ready', async (_request, reply) => {
    const health = healthOf(service);
    if (!health.ready) return notReady(reply, 'server', health);
    const missing = options.servedModels?.missing();
    if (missing !== undefined) return notReady(reply, 'server', { ...health, ready: false }, missing);
    return { ready: true, degraded: health.degraded };
  });

  const metadata = async (request: FastifyRequest<ModelParams>) =>
    v2ModelMetadata(findServedModel(service, request.params.name, request.params.version));
  app.get<ModelParams>('/v2/models/:name', metadata);
  app.get<ModelParams>('/v2/models/:name/versions/:version', metadata);

  const ready = async (request: FastifyRequest<ModelParams>, reply: FastifyReply) => {
    const model = findServedModel(service, request.params.name, request.params.version);
    const health = healthOf(service);
    if (!health.ready) return notReady(reply, `model "${model.name}"`, health);
    return { name: model.name, version: model.version, ready: true };
  };
  app.get<ModelParams>('/v2/models/:name/ready', ready);
  app.get<ModelParams>('/v2/models/:name/versions/:version/ready', ready);

  const infer = async (request: FastifyRequest<ModelParams>, reply: FastifyReply) => {
    const model = findServedModel(service, request.params.name, request.params.version);
    const body = readV2Body(request, options.jsonLimits);
    const parsed = parseV2Request(body.json, model, body.binary, body.jsonValues);
    const result = await inferForRequest(
      service,
      model.name,
      parsed.inputs,
      request,
      reply,
      options.timeoutMs,
      request.params.version,
    );
    const answer = v2Response(model, parsed, result);
    return sendV2Answer(reply, answer.response, answer.binary);
  };
  const onRequest =
    options.limit === undefined
      ? [requireOctetStreamForBinary]
      : [options.limit, requireOctetStreamForBinary];
  app.post<ModelParams>('/v2/models/:name/infer', { onRequest }, infer);
  app.post<ModelParams>('/v2/models/:name/versions/:version/infer', { onRequest }, infer);
}
