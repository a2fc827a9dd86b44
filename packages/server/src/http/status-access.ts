/**
 * Who may read the routes that describe the cluster (`GET /api/status`, `GET /metrics`, the
 * repository index): `open` (anyone, the default), `loopback` (clients on this machine, or
 * with the admin token) or `token` (the admin token only). Health and inference routes are
 * not affected.
 *
 * @module
 */
import { DinferError, DinferErrorCode } from '@dinfer/core';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { type AdminCredential, requireAdmin } from './admin-token.js';
import { isLoopbackAddress } from './host-check.js';

/** The choices of {@link StatusAccess}. */
export const STATUS_ACCESS_MODES = ['open', 'loopback', 'token'] as const;

/** Who may read the status routes; see the module documentation. */
export type StatusAccess = (typeof STATUS_ACCESS_MODES)[number];

/** The routes {@link StatusAccess} restricts. */
export const STATUS_ROUTES: readonly string[] = ['/api/status', '/metrics', '/v2/repository/index'];

/**
 * Registers the restriction on `app` (an `onRequest` hook).
 *
 * @throws DinferError INVALID_ARGUMENT for `loopback` or `token` without an admin credential
 *   to accept (a `token` mode no one could pass; `loopback` is allowed without one).
 */
export function registerStatusAccess(
  app: FastifyInstance,
  access: StatusAccess,
  admin: AdminCredential | undefined,
): void {
  if (!(STATUS_ACCESS_MODES as readonly string[]).includes(access)) {
    throw new DinferError(
      DinferErrorCode.INVALID_ARGUMENT,
      `statusAccess "${String(access)}": expected one of ${STATUS_ACCESS_MODES.join(', ')}`,
    );
  }
  if (access === 'open') return;
  if (access === 'token' && admin === undefined) {
    throw new DinferError(
      DinferErrorCode.INVALID_ARGUMENT,
      'statusAccess "token" needs an admin token (--admin-token-file or DINFER_ADMIN_TOKEN)',
    );
  }
  const routes = new Set(STATUS_ROUTES);
  app.addHook('onRequest', async (request: FastifyRequest) => {
    if (!routes.has(request.routeOptions.url ?? '')) return;
    if (access === 'loopback') {
      if (isLoopbackAddress(request.socket.remoteAddress) || admin?.presentedBy(request)) return;
      throw new DinferError(
        DinferErrorCode.AUTH_FAILED,
        `${request.routeOptions.url} answers only to loopback clients or with the admin token ` +
          '(Authorization: Bearer <token>)',
      );
    }
    requireAdmin(request, admin!, request.routeOptions.url ?? 'this route');
  });
}
