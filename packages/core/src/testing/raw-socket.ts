/**
 * Hostile input below the channel, for socket-based transports (TCP, TLS, pipes): a raw
 * socket that writes arbitrary bytes to a listener and waits for it to hang up. With
 * {@link frameCodecGarbage}, the `sendRawGarbage` hook of the transport suite for any
 * transport built on core's frame codec.
 *
 * @module
 */
import { connect } from 'node:net';
import { DinferError, DinferErrorCode } from '../errors.js';
import { FRAME_MAGIC } from '../protocol/frame-codec.js';

/** Options of {@link sendRawSocketBytes}. */
export interface RawSocketOptions {
  /** Reject when the listener has not closed the socket after this many ms. Default 5000. */
  readonly timeoutMs?: number | undefined;
}

/** Splits `host:port` / `[v6]:port` (an optional `scheme://` prefix is dropped). */
function hostPort(address: string): { host: string; port: number } {
  const bare = address.replace(/^[a-z][a-z0-9+.-]*:\/\//i, '');
  const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(bare);
  if (match === null) {
    throw new DinferError(
      DinferErrorCode.INVALID_ARGUMENT,
      `expected host:port, got ${JSON.stringify(address)}`,
    );
  }
  return { host: match[1] ?? match[2]!, port: Number(match[3]) };
}

/**
 * Opens a plain TCP socket to `address`, writes `bytes`, and resolves once the listener has
 * closed the socket; rejects if it is still open after `timeoutMs` (or cannot connect).
 */
export function sendRawSocketBytes(
  address: string,
  bytes: Uint8Array,
  options: RawSocketOptions = {},
): Promise<void> {
  const { host, port } = hostPort(address);
  const timeoutMs = options.timeoutMs ?? 5000;
  return new Promise<void>((resolve, reject) => {
    const socket = connect({ host, port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`listener ${address} kept the raw socket open for ${timeoutMs} ms`));
    }, timeoutMs);
    let connected = false;
    let failure: Error | undefined;
    socket.on('error', (error) => {
      failure = error;
    });
    socket.once('connect', () => {
      connected = true;
      socket.write(bytes);
    });
    socket.on('data', () => {});
    socket.once('close', () => {
      clearTimeout(timer);
      if (connected) resolve();
      else reject(new Error(`could not connect to ${address}: ${failure?.message ?? 'closed'}`));
    });
  });
}

/**
 * Bytes that break core's frame codec (`protocol/frame-codec.ts`): `malformed` is a frame
 * whose header length lies about the body; `oversize` announces a 2 GiB frame.
 */
export function frameCodecGarbage(kind: 'malformed' | 'oversize'): Uint8Array {
  return kind === 'oversize'
    ? new Uint8Array([0x7f, 0xff, 0xff, 0xff, FRAME_MAGIC])
    : new Uint8Array([0, 0, 0, 12, FRAME_MAGIC, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 1, 2, 3]);
}
