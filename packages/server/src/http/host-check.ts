/**
 * The Host header check: a request whose `Host` is not a name this server answers to is
 * refused (403), so a page whose own name resolves to this machine (DNS rebinding) cannot
 * talk to it. Accepted by default: `localhost` and `*.localhost`, loopback addresses, the
 * address the connection arrived on, and this machine's host name; more with `allowedHosts`:
 * exact names, `*.example.com` for every subdomain, or `*` for any.
 *
 * @module
 */
import { isIP } from 'node:net';
import { hostname } from 'node:os';
import { DinferError, DinferErrorCode } from '@dinfer/core';
import type { FastifyInstance, FastifyRequest } from 'fastify';

/** The host name of a `Host` header: lower case, without port, brackets or a final dot. */
export function hostOf(header: string): string {
  let host = header.trim().toLowerCase();
  if (host.startsWith('[')) host = host.slice(1, host.indexOf(']') < 0 ? undefined : host.indexOf(']'));
  else if (host.indexOf(':') === host.lastIndexOf(':')) host = host.replace(/:\d*$/, '');
  return host.replace(/\.$/, '');
}

/** The address without an IPv4-mapped IPv6 prefix (`::ffff:127.0.0.1` -> `127.0.0.1`). */
export function plainAddress(address: string): string {
  return address.toLowerCase().replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/, '');
}

/** True for a loopback address (127.0.0.0/8, ::1). */
export function isLoopbackAddress(address: string | undefined): boolean {
  if (address === undefined) return false;
  const plain = plainAddress(address);
  return plain === '::1' || (isIP(plain) === 4 && plain.startsWith('127.'));
}

/** Tells whether a host name (see {@link hostOf}) is one of `allowed` (names or patterns). */
export function hostMatcher(allowed: readonly string[]): (host: string) => boolean {
  const names = new Set<string>();
  const suffixes: string[] = [];
  let any = false;
  for (const entry of allowed) {
    const name = hostOf(entry);
    if (name === '*') any = true;
    else if (name.startsWith('*.')) suffixes.push(name.slice(1));
    else names.add(name);
  }
  return (host) => any || names.has(host) || suffixes.some((suffix) => host.endsWith(suffix));
}

/** Registers the check on `app` (an `onRequest` hook), accepting `extra` beside the defaults. */
export function registerHostCheck(app: FastifyInstance, extra: readonly string[] = []): void {
  const allowed = hostMatcher(['localhost', '*.localhost', hostname(), ...extra]);
  app.addHook('onRequest', async (request: FastifyRequest) => {
    const header = request.headers.host;
    if (header === undefined) return;
    const host = hostOf(header);
    if (allowed(host) || isLoopbackAddress(host)) return;
    const local = request.socket.localAddress;
    if (local !== undefined && plainAddress(local) === host) return;
    throw new DinferError(
      DinferErrorCode.FORBIDDEN,
      `Host "${header.slice(0, 100)}" is not a name this server answers to; add it with --allowed-hosts ` +
        '(DINFER_ALLOWED_HOSTS, master.http.allowedHosts)',
      { details: { host } },
    );
  });
}
