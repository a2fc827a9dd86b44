/**
 * Records every answered inference HTTP request: into the sliding window behind
 * `GET /api/status`, and into the `ai_inference_requests_total` counter and
 * `ai_inference_latency_seconds` histogram.
 *
 * Inference routes are the POST routes whose path is `/api/infer` (or under it) or ends in
 * `/infer` (the KServe v2 routes). The `status` label is the class of the HTTP status:
 * `success` (2xx/3xx), `client_error` (4xx: bad input, unknown model, body too large) or
 * `server_error` (5xx: failures, overload, timeouts). Latency is recorded for successful
 * requests only, from arrival (before body parsing) to the answer. The `model` label is the
 * model the request named (or the only model served) when the service serves it, else
 * `unknown`, so clients cannot grow the label set.
 *
 * @module
 */
import type { InferenceService, Metrics } from '@dinfer/core';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { RequestOutcome, RequestWindow } from './request-window.js';

/** Options of {@link recordInferenceRequests}. */
export interface InferenceRecorderOptions {
  readonly service: InferenceService;
  readonly window: RequestWindow;
  readonly metrics?: Metrics | undefined;
}

/** True for the routes {@link recordInferenceRequests} records (by method and route pattern). */
export function isInferenceRoute(method: string, url: string | undefined): boolean {
  if (method !== 'POST' || url === undefined) return false;
  return url === '/api/infer' || url.startsWith('/api/infer/') || url.endsWith('/infer');
}

/** The outcome class of an HTTP status code. */
export function outcomeOf(statusCode: number): RequestOutcome {
  if (statusCode >= 500) return 'server_error';
  if (statusCode >= 400) return 'client_error';
  return 'success';
}

function modelOf(request: FastifyRequest, service: InferenceService): string {
  const params = request.params as { name?: unknown } | undefined;
  const body = request.body as { model?: unknown } | undefined;
  const named =
    typeof params?.name === 'string'
      ? params.name
      : body !== null && typeof body === 'object' && typeof body.model === 'string'
        ? body.model
        : undefined;
  const served = service.models();
  if (named === undefined) return served.length === 1 ? (served[0]?.name ?? 'unknown') : 'unknown';
  return served.some((m) => m.name === named) ? named : 'unknown';
}

/** Adds the `onResponse` hook that records inference requests on `app`. */
export function recordInferenceRequests(app: FastifyInstance, options: InferenceRecorderOptions): void {
  const { service, window, metrics } = options;
  app.addHook('onResponse', async (request, reply) => {
    if (!isInferenceRoute(request.method, request.routeOptions.url)) return;
    const outcome = outcomeOf(reply.statusCode);
    const ms = reply.elapsedTime;
    window.record(outcome, ms);
    if (metrics === undefined) return;
    const model = modelOf(request, service);
    metrics.increment('ai_inference_requests_total', { model, status: outcome });
    if (outcome === 'success') metrics.observe('ai_inference_latency_seconds', { model }, ms / 1000);
  });
}
