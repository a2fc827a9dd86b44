/**
 * The client of `byte-server.mjs`: sends `bytes` zero bytes, then reads as many back, and
 * times both directions separately.
 *
 * @module
 */
import net from 'node:net';

/** Times of one exchange with `byte-server.mjs`, in ms. */
export interface ExchangeTimes {
  /** From connect until the first byte came back (the upload, plus one round trip). */
  readonly uploadMs: number;
  /** From the first byte back until the last (the download). */
  readonly downloadMs: number;
  readonly bytesBack: number;
}

/** Sends `bytes` to `host:port` and reads them back; rejects after `timeoutMs`. */
export function exchange(
  host: string,
  port: number,
  bytes: number,
  timeoutMs = 20_000,
): Promise<ExchangeTimes> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port, timeout: timeoutMs });
    let connectedAt = 0;
    let firstByteAt = 0;
    let bytesBack = 0;
    socket.once('connect', () => {
      connectedAt = performance.now();
      socket.end(Buffer.alloc(bytes));
    });
    socket.on('data', (chunk) => {
      if (bytesBack === 0) firstByteAt = performance.now();
      bytesBack += chunk.length;
    });
    socket.once('end', () => {
      const done = performance.now();
      socket.destroy();
      resolve({ uploadMs: firstByteAt - connectedAt, downloadMs: done - firstByteAt, bytesBack });
    });
    socket.once('timeout', () =>
      socket.destroy(new Error(`no progress from ${host}:${port} in ${timeoutMs} ms`)),
    );
    socket.once('error', reject);
  });
}

/** Resolves true once a TCP connection to `host:port` opens within `timeoutMs`, false otherwise. */
export function canConnect(host: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(false);
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => {
      clearTimeout(timer);
      resolve(false);
    });
  });
}
