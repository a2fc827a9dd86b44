/**
 * Refuses requests that change something (any method but GET, HEAD and OPTIONS) when a
 * browser says a page of another site sends them: `Sec-Fetch-Site` other than `same-origin`
 * or `none` (a `same-site` page on another port of localhost is another origin too), or an
 * `Origin` that is not this server's. Clients that are no browser send neither header and are
 * not affected; reading (a link to the status page) is not refused.
 *
 * @module
 */
import { DinferError, DinferErrorCode } from '@dinfer/core';
import type { FastifyInstance, FastifyRequest } from 'fastify';

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** Why `request` comes from another site, or `undefined` when it does not. */
export function crossSiteReason(request: FastifyRequest): string | undefined {
  const fetchSite = request.headers['sec-fetch-site'];
  if (typeof fetchSite === 'string' && fetchSite !== 'same-origin' && fetchSite !== 'none') {
    return `Sec-Fetch-Site: ${fetchSite}`;
  }
  const origin = request.headers.origin;
  if (origin === undefined) return undefined;
  return sameOrigin(origin, request.headers.host) ? undefined : `Origin ${origin.slice(0, 100)}`;
}

/** True when `origin` names the server the `host` header addresses (default ports filled in). */
function sameOrigin(origin: string, host: string | undefined): boolean {
  if (host === undefined) return false;
  try {
    const from = new URL(origin);
    if (from.protocol !== 'http:' && from.protocol !== 'https:') return false;
    const own = new URL(`${from.protocol}//${host}`);
    return from.host === own.host;
  } catch {
    return false;
  }
}

/** Registers the check on `app` (an `onRequest` hook). */
export function registerCrossSiteCheck(app: FastifyInstance): void {
  app.addHook('onRequest', async (request: FastifyRequest) => {
    if (SAFE_METHODS.has(request.method)) return;
    const reason = crossSiteReason(request);
    if (reason === undefined) return;
    throw new DinferError(
      DinferErrorCode.FORBIDDEN,
      `cross-site ${request.method} refused (${reason}): this API answers no request a page of another site sends`,
      { details: { reason } },
    );
  });
}
