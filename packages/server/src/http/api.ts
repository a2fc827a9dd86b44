/**
 * The master's HTTP API: a fastify instance serving `POST /api/infer` (simple JSON, top-5)
 * and the KServe v2 / Open Inference Protocol routes over any {@link InferenceService}.
 * It also serves `GET /api/status` (JSON), the status page at `GET /`, and `GET /metrics`
 * (Prometheus) when given a metrics registry.
 *
 * @module
 */

import { randomUUID } from 'node:crypto';
import {
  type ClusterStatus,
  DinferError,
  DinferErrorCode,
  type InferenceService,
  isDinferError,
} from '@dinfer/core';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from 'fastify';
import { checkTokenStrength } from '../config/secrets.js';
import { errorToHttp } from '../errors-to-http.js';
import type { PrometheusMetrics } from '../metrics/prometheus-metrics.js';
import { checkPreprocessOption, type PreprocessOption } from '../preprocess/config.js';
import { recordInferenceRequests } from '../status/inference-recorder.js';
import { createRequestWindow } from '../status/request-window.js';
import { type AdminCredential, adminCredential } from './admin-token.js';
import {
  capConnections,
  connectionServerOptions,
  type DEFAULT_HTTP_BODY_TIMEOUT_MS,
  type DEFAULT_HTTP_IDLE_TIMEOUT_MS,
  type DEFAULT_HTTP_MAX_CONNECTIONS,
} from './connection-limits.js';
import { registerCrossSiteCheck } from './cross-site.js';
import { registerHostCheck } from './host-check.js';
import { registerImageInput } from './image-input.js';
import { markArrival } from './infer-for-request.js';
import { registerJsonBody } from './json-body.js';
import {
  checkJsonLimits,
  type DEFAULT_JSON_MAX_DEPTH,
  type DEFAULT_JSON_MAX_VALUES,
  type JsonLimits,
} from './json-limits.js';
import { registerKServe } from './kserve-routes.js';
import { registerMetricsRoute } from './metrics-route.js';
import { registerOctetStreamBody } from './octet-stream-body.js';
import { checkRateLimit, inferenceRateLimit } from './rate-limit.js';
import { redactPaths } from './redact-paths.js';
import { type RepositoryRoutesTarget, registerRepositoryRoutes } from './repository-routes.js';
import { watchServedModels } from './served-models-readiness.js';
import { checkSimpleInferOptions, registerSimpleInfer } from './simple-infer.js';
import { registerStatusAccess, type StatusAccess } from './status-access.js';
import { registerStatusPage } from './status-page.js';
import { registerStatusRoutes } from './status-routes.js';

/** Default request body limit: 32 MiB (a 224x224x3 float image is about 2-3 MB of JSON). */
export const DEFAULT_HTTP_BODY_LIMIT_BYTES = 32 * 1024 * 1024;

/** Options of {@link createHttpApi}. */
export interface HttpApiOptions {
  /** Largest accepted request body; larger ones get 413. Default {@link DEFAULT_HTTP_BODY_LIMIT_BYTES}. */
  readonly bodyLimitBytes?: number | undefined;
  /** A pino-compatible logger, or `true` for fastify's own pino, `false` (default) for none. */
  readonly logger?: FastifyBaseLogger | boolean | undefined;
  /** Server name in `GET /v2`. Default `dinfer`. */
  readonly serverName?: string | undefined;
  /** Server version in `GET /v2`. Default `0.0.0`. */
  readonly version?: string | undefined;
  /** Deadline of each inference, in ms from its arrival (504 when it passes). Default: none. */
  readonly requestTimeoutMs?: number | undefined;
  /** The cluster's status for `GET /api/status` (e.g. `() => coordinator.status()`). */
  readonly status?: (() => ClusterStatus) | undefined;
  /**
   * Serves `GET /metrics` from this registry and records `ai_inference_requests_total` and
   * `ai_inference_latency_seconds` per inference route. Default: neither.
   */
  readonly metrics?: PrometheusMetrics | undefined;
  /** Serves the status page at `GET /`. Default true. */
  readonly statusPage?: boolean | undefined;
  /** Image preprocessing of `POST /api/infer` per model: a record by name or a function. */
  readonly preprocess?: PreprocessOption | undefined;
  /** Largest image `POST /api/infer` decodes, in pixels. Default 40 megapixels. */
  readonly maxImagePixels?: number | undefined;
  /**
   * Largest image for a model input of fixed height and width, in image pixels per input
   * pixel (never below one megapixel), checked from the image header before decoding.
   * Default 256 (16 times the input's height and width).
   */
  readonly maxImagePixelRatio?: number | undefined;
  /**
   * Deepest nesting of arrays and objects in a JSON body (and the JSON part of a binary
   * request), checked before parsing. Default {@link DEFAULT_JSON_MAX_DEPTH}.
   */
  readonly jsonMaxDepth?: number | undefined;
  /**
   * Most values (opening brackets plus commas) in a JSON body, checked before parsing; it also
   * bounds the tensors read from it. Default {@link DEFAULT_JSON_MAX_VALUES}.
   */
  readonly jsonMaxValues?: number | undefined;
  /** Serves the model repository routes `/v2/repository/*` (index, load, unload) over it. */
  readonly repository?: RepositoryRoutesTarget | undefined;
  /**
   * Answers `POST /v2/repository/models/{name}/load|unload` (with the admin token). Default
   * false: they answer 403.
   */
  readonly modelControl?: boolean | undefined;
  /**
   * The admin credential, a bearer token of at least 16 characters: model control needs it,
   * restricted status routes accept it.
   */
  readonly adminToken?: string | undefined;
  /**
   * Host header names answered beside the defaults (`localhost`, loopback addresses, the
   * address a connection arrived on, the machine's host name): names, `*.example.com`, or
   * `*` for any. Other names get 403 (DNS rebinding).
   */
  readonly allowedHosts?: readonly string[] | undefined;
  /**
   * Who may read `/api/status`, `/metrics` and the repository index: `open` (default),
   * `loopback` (local clients or the admin token), `token` (the admin token).
   */
  readonly statusAccess?: StatusAccess | undefined;
  /**
   * Time to receive a whole request, headers and body, in ms (408 after; headers get at most
   * 10 s). Default {@link DEFAULT_HTTP_BODY_TIMEOUT_MS}.
   */
  readonly bodyTimeoutMs?: number | undefined;
  /** Time an idle keep-alive connection stays open, in ms. Default {@link DEFAULT_HTTP_IDLE_TIMEOUT_MS}. */
  readonly idleTimeoutMs?: number | undefined;
  /** Most connections at once; more are closed on arrival. Default {@link DEFAULT_HTTP_MAX_CONNECTIONS}. */
  readonly maxConnections?: number | undefined;
  /**
   * Inference requests (`POST /api/infer`, `POST /v2/models/.../infer`) one client address may
   * send per `rateLimitWindowMs` (429 past it). Default 0: no limit (the master's setting
   * has one).
   */
  readonly rateLimit?: number | undefined;
  /** The window of `rateLimit`, in ms. Default 1000. */
  readonly rateLimitWindowMs?: number | undefined;
}

/**
 * The admin credential of `options`, checked.
 *
 * @throws DinferError INVALID_ARGUMENT for model control without an admin token;
 *   CONFIG_INVALID for a token under 16 characters.
 */
function adminOf(options: HttpApiOptions): AdminCredential | undefined {
  const token = options.adminToken;
  if (token === undefined) {
    if (options.modelControl) {
      throw new DinferError(
        DinferErrorCode.INVALID_ARGUMENT,
        'model control needs an admin token (adminToken; --admin-token-file or DINFER_ADMIN_TOKEN)',
      );
    }
    return undefined;
  }
  checkTokenStrength(token, 'the admin token');
  return adminCredential(token);
}

function formatBytes(bytes: number): string {
  return bytes >= 1024 * 1024 && bytes % (1024 * 1024) === 0
    ? `${bytes / (1024 * 1024)} MiB`
    : `${bytes} bytes`;
}

/**
 * Creates (does not start) the HTTP API over `service`. Call `listen()` on the result, or
 * `inject()` in tests. Every error answers JSON `{"error", "code"?}`: statuses come from
 * errors-to-http.ts (400 bad input, 404 unknown model or route, 413 body too large, 503 with
 * `Retry-After`, 504 timeout). Each answer carries `x-request-id` (taken from the request
 * header when present), which is also passed to the service.
 *
 * @throws DinferError INVALID_ARGUMENT for an invalid body limit, timeout or JSON bound.
 */
export function createHttpApi(service: InferenceService, options: HttpApiOptions = {}): FastifyInstance {
  const bodyLimit = options.bodyLimitBytes ?? DEFAULT_HTTP_BODY_LIMIT_BYTES;
  if (!Number.isSafeInteger(bodyLimit) || bodyLimit < 1) {
    throw new DinferError(
      DinferErrorCode.INVALID_ARGUMENT,
      `bodyLimitBytes ${bodyLimit} must be a positive integer`,
    );
  }
  const timeoutMs = options.requestTimeoutMs;
  if (timeoutMs !== undefined && (!Number.isFinite(timeoutMs) || timeoutMs <= 0)) {
    throw new DinferError(
      DinferErrorCode.INVALID_ARGUMENT,
      `requestTimeoutMs ${timeoutMs} must be a positive number`,
    );
  }
  const jsonLimits: JsonLimits = { maxDepth: options.jsonMaxDepth, maxValues: options.jsonMaxValues };
  checkJsonLimits(jsonLimits);
  const admin = adminOf(options);
  const rate = { max: options.rateLimit, windowMs: options.rateLimitWindowMs };
  checkRateLimit(rate);
  const logger = options.logger ?? false;
  const app = Fastify({
    bodyLimit,
    // A client's x-request-id is kept when it is a short token (it travels to the workers and
    // into their logs); anything else gets a fresh UUID.
    requestIdHeader: false,
    genReqId: (raw) => {
      const given = raw.headers['x-request-id'];
      return typeof given === 'string' && /^[\w.:-]{1,128}$/.test(given) ? given : randomUUID();
    },
    logController: new LogController({ requestIdLogLabel: 'requestId' }),
    // Stopping a master must not wait for idle keep-alive clients (e.g. an open status page).
    forceCloseConnections: true,
    ...connectionServerOptions(options),
    ...(typeof logger === 'boolean' ? { logger } : { loggerInstance: logger }),
  }) as unknown as FastifyInstance;
  capConnections(app, options);

  app.addHook('onRequest', async (request, reply) => {
    markArrival(request);
    reply.header('x-request-id', request.id);
  });

  // The Host check first: a rebound name learns nothing else; then no cross-site change.
  registerHostCheck(app, options.allowedHosts);
  registerCrossSiteCheck(app);
  registerStatusAccess(app, options.statusAccess ?? 'open', admin);
  const roots =
    options.repository?.dir === undefined
      ? []
      : [{ dir: options.repository.dir, name: 'the model repository' }];
  const redact = (text: string) => redactPaths(text, roots);

  app.setErrorHandler((error, request, reply) => {
    const answer = errorToHttp(error);
    let body = { ...answer.body, error: redact(answer.body.error) };
    if (answer.status === 413) {
      body = { ...body, error: `request body exceeds the limit of ${formatBytes(bodyLimit)}` };
    }
    if (isDinferError(error, DinferErrorCode.ABORTED))
      request.log.debug({}, `request aborted: ${body.error}`);
    else if (answer.status >= 500) request.log.error({ err: error }, `request failed: ${body.error}`);
    else request.log.debug({ status: answer.status, code: body.code }, `request refused: ${body.error}`);
    return reply.code(answer.status).headers(answer.headers).send(body);
  });

  app.setNotFoundHandler((request, reply) =>
    reply.code(404).send({ error: `no route ${request.method} ${request.url.split('?')[0]}` }),
  );

  const window = createRequestWindow();
  recordInferenceRequests(app, { service, window, metrics: options.metrics });
  registerStatusRoutes(app, { service, window, status: options.status });
  if (options.metrics) registerMetricsRoute(app, options.metrics);
  if (options.statusPage ?? true) registerStatusPage(app);
  checkPreprocessOption(options.preprocess);
  registerJsonBody(app, bodyLimit, jsonLimits);
  registerOctetStreamBody(app, bodyLimit);
  registerImageInput(app, bodyLimit);
  const servedModels = watchServedModels(service);
  checkSimpleInferOptions(options);
  // The routes live in a plugin, so that the rate limiter is registered before them.
  app.register(async (scope) => {
    const limit = await inferenceRateLimit(scope, rate);
    registerSimpleInfer(scope, service, {
      timeoutMs,
      preprocess: options.preprocess,
      maxImagePixels: options.maxImagePixels,
      maxImagePixelRatio: options.maxImagePixelRatio,
      jsonLimits,
      limit,
    });
    if (options.repository) {
      registerRepositoryRoutes(scope, options.repository, {
        modelControl: options.modelControl ? admin : undefined,
        redact,
        onUnloaded: (model) => servedModels.forget(model),
      });
    }
    registerKServe(scope, service, {
      servedModels,
      serverName: options.serverName ?? 'dinfer',
      version: options.version ?? '0.0.0',
      timeoutMs,
      jsonLimits,
      limit,
    });
  });
  return app;
}
