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
import { errorToHttp } from '../errors-to-http.js';
import type { PrometheusMetrics } from '../metrics/prometheus-metrics.js';
import { checkPreprocessOption, type PreprocessOption } from '../preprocess/config.js';
import { recordInferenceRequests } from '../status/inference-recorder.js';
import { createRequestWindow } from '../status/request-window.js';
import { registerImageInput } from './image-input.js';
import { markArrival } from './infer-for-request.js';
import { registerKServe } from './kserve-routes.js';
import { registerMetricsRoute } from './metrics-route.js';
import { registerOctetStreamBody } from './octet-stream-body.js';
import { type RepositoryRoutesTarget, registerRepositoryRoutes } from './repository-routes.js';
import { registerSimpleInfer } from './simple-infer.js';
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
  /** Serves the model repository routes `/v2/repository/*` (index, load, unload) over it. */
  readonly repository?: RepositoryRoutesTarget | undefined;
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
 * @throws DinferError INVALID_ARGUMENT for an invalid body limit or timeout.
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
    ...(typeof logger === 'boolean' ? { logger } : { loggerInstance: logger }),
  }) as unknown as FastifyInstance;

  app.addHook('onRequest', async (request, reply) => {
    markArrival(request);
    reply.header('x-request-id', request.id);
  });

  app.setErrorHandler((error, request, reply) => {
    const answer = errorToHttp(error);
    let body = answer.body;
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
  registerOctetStreamBody(app, bodyLimit);
  registerImageInput(app, bodyLimit);
  registerSimpleInfer(app, service, {
    timeoutMs,
    preprocess: options.preprocess,
    maxImagePixels: options.maxImagePixels,
  });
  if (options.repository) registerRepositoryRoutes(app, options.repository);
  registerKServe(app, service, {
    serverName: options.serverName ?? 'dinfer',
    version: options.version ?? '0.0.0',
    timeoutMs,
  });
  return app;
}
