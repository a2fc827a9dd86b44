/**
 * Parsing of `host:port` addresses (`[v6]:port` for IPv6) into their parts and URLs.
 *
 * @module
 */
import { DinferError, DinferErrorCode } from '@dinfer/core';

/** A parsed `host:port` address. */
export interface HostPort {
  /** Host name or IP, without IPv6 brackets. */
  readonly host: string;
  /** Port number, 0..65535 (0 only makes sense for listening). */
  readonly port: number;
}

/**
 * Parses `host:port` or `[ipv6]:port`; an `http://` or `ws://` prefix is accepted for dialing.
 * Throws `DINFER_ERR_INVALID_ARGUMENT` on anything else.
 */
export function parseAddress(address: string): HostPort {
  if (typeof address !== 'string') {
    throw new DinferError(DinferErrorCode.INVALID_ARGUMENT, 'address must be a string "host:port"');
  }
  const bare = address.replace(/^(?:https?|wss?):\/\//, '').replace(/\/$/, '');
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]/\s]+)):(\d{1,5})$/.exec(bare);
  const port = match === null ? Number.NaN : Number(match[3]);
  if (match === null || port > 65535) {
    throw new DinferError(
      DinferErrorCode.INVALID_ARGUMENT,
      `invalid address "${address}": expected host:port`,
      {
        details: { address },
      },
    );
  }
  return { host: match[1] ?? match[2] ?? '', port };
}

/** Formats a host and port back into an address (`[v6]:port` for IPv6). */
export function formatAddress(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
