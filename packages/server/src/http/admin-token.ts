/**
 * The HTTP admin credential: a bearer token (`Authorization: Bearer <token>`) that model
 * control needs, and restricted status routes accept. It is compared in constant time, as
 * SHA-256 digests, so neither its bytes nor its length leak through timing.
 *
 * @module
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { DinferError, DinferErrorCode } from '@dinfer/core';
import type { FastifyRequest } from 'fastify';

/** The realm of the `WWW-Authenticate` challenge. */
export const ADMIN_REALM = 'dinfer';

/** The admin token, ready to be compared with what requests send. */
export interface AdminCredential {
  /** True when `request` carries the admin token as its bearer token. */
  presentedBy(request: FastifyRequest): boolean;
}

const digest = (text: string) => createHash('sha256').update(text, 'utf8').digest();

/** The credential for `token`. */
export function adminCredential(token: string): AdminCredential {
  const expected = digest(token);
  return {
    presentedBy(request) {
      const header = request.headers.authorization;
      const match = typeof header === 'string' ? /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header) : null;
      return match !== null && timingSafeEqual(digest(match[1]!), expected);
    },
  };
}

/**
 * Throws unless `request` carries the admin token.
 *
 * @param what says what needs it, e.g. `model control`.
 * @throws DinferError AUTH_FAILED (401, with a `Bearer` challenge) without the token or with
 *   another one.
 */
export function requireAdmin(request: FastifyRequest, admin: AdminCredential, what: string): void {
  if (admin.presentedBy(request)) return;
  const sent = request.headers.authorization !== undefined;
  throw new DinferError(
    DinferErrorCode.AUTH_FAILED,
    sent
      ? `${what}: the credential does not match the admin token`
      : `${what} needs the admin token: send Authorization: Bearer <token>`,
    { details: { challenge: `Bearer realm="${ADMIN_REALM}"` } },
  );
}
