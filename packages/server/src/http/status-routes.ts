/**
 * `GET /api/status`: a JSON snapshot of the cluster and of the last minute of requests
 * (see {@link StatusReport}). The status page polls it every second.
 *
 * @module
 */
import type { ClusterStatus, InferenceService } from '@dinfer/core';
import type { FastifyInstance } from 'fastify';
import type { RequestWindow } from '../status/request-window.js';
import { buildStatusReport, type StatusReport } from '../status/status-report.js';

/** Options of {@link registerStatusRoutes}. */
export interface StatusRouteOptions {
  readonly service: InferenceService;
  readonly window: RequestWindow;
  /** The cluster's status (e.g. `() => coordinator.status()`); none for a local service. */
  readonly status?: (() => ClusterStatus) | undefined;
  /** When the server started, ms since the epoch. Default: now. */
  readonly startedAt?: number | undefined;
}

/** Registers `GET /api/status` on `app`. */
export function registerStatusRoutes(app: FastifyInstance, options: StatusRouteOptions): void {
  const startedAt = options.startedAt ?? Date.now();
  app.get('/api/status', async (_request, reply): Promise<StatusReport> => {
    reply.header('cache-control', 'no-store');
    return buildStatusReport({
      service: options.service,
      requests: options.window.snapshot(),
      cluster: options.status?.(),
      startedAt,
    });
  });
}
