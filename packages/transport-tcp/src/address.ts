/**
 * `host:port` addresses for TCP, with IPv6 hosts in brackets (`[::1]:7000`).
 *
 * @module
 */
import { isIP } from 'node:net';
import { DinferError, DinferErrorCode } from '@dinfer/core';

/** A parsed TCP address. */
export interface TcpAddress {
  /** Host name or IP literal, without brackets. */
  readonly host: string;
  /** Port, 0-65535 (0 asks the OS for a free port when listening). */
  readonly port: number;
}

/**
 * Parses `host:port`, `[ipv6]:port` or `tcp://host:port`.
 *
 * @throws DinferError `INVALID_ARGUMENT` for anything else.
 */
export function parseTcpAddress(address: string): TcpAddress {
  const text = address.startsWith('tcp://') ? address.slice('tcp://'.length) : address;
  let host: string;
  let portText: string;
  if (text.startsWith('[')) {
    const end = text.indexOf(']');
    if (end < 0 || text[end + 1] !== ':') throw invalid(address);
    host = text.slice(1, end);
    portText = text.slice(end + 2);
    if (isIP(host) !== 6) throw invalid(address, 'bracketed host must be an IPv6 literal');
  } else {
    const colon = text.lastIndexOf(':');
    if (colon <= 0) throw invalid(address);
    host = text.slice(0, colon);
    portText = text.slice(colon + 1);
    if (host.includes(':')) throw invalid(address, 'write IPv6 hosts in brackets, e.g. [::1]:7000');
  }
  if (!/^\d{1,5}$/.test(portText)) throw invalid(address);
  const port = Number(portText);
  if (port > 65535 || host.length === 0) throw invalid(address);
  return { host, port };
}

/** Formats an address back to `host:port` (`[host]:port` for IPv6). */
export function formatTcpAddress({ host, port }: TcpAddress): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

function invalid(address: string, hint = 'expected host:port or [ipv6]:port'): DinferError {
  return new DinferError(DinferErrorCode.INVALID_ARGUMENT, `invalid TCP address "${address}": ${hint}`, {
    details: { address },
  });
}
