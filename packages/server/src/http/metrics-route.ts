/**
 * `GET /metrics`: the Prometheus text exposition of the master's registry.
 *
 * @module
 */
import type { FastifyInstance } from 'fastify';
import type { PrometheusMetrics } from '../metrics/prometheus-metrics.js';

/** Registers `GET /metrics` on `app`, answering `metrics.exposition()`. */
export function registerMetricsRoute(app: FastifyInstance, metrics: PrometheusMetrics): void {
  app.get('/metrics', async (_request, reply) => {
    const text = await metrics.exposition();
    return reply.header('content-type', metrics.contentType).header('cache-control', 'no-store').send(text);
  });
}
