/**
 * An unauthenticated peer must not make a listener buffer large messages: raw socket.io
 * clients (in another process) send 64 MiB messages without authenticating, and the
 * listener's memory may grow by a few MiB per socket at most.
 */
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { listenForConnections, PROTOCOL_VERSION } from '@dinfer/core';
import { describe, expect, it } from 'vitest';
import { socketIoTransport } from '../src/index.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const SOCKETS = 4;
const MiB = 1024 * 1024;
/** Allowed growth of the listener's resident memory per hostile socket. */
const PER_SOCKET_BYTES = 6 * MiB;

function flood(address: string, messageBytes: number, messages: number): Promise<string[]> {
  const child = fork(
    fileURLToPath(new URL('./fixtures/raw-flood.mjs', import.meta.url)),
    [address, String(SOCKETS), String(messageBytes), String(messages), String(PROTOCOL_VERSION)],
    { stdio: 'ignore' },
  );
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill();
      reject(new Error('the flooding process did not finish in 20 s'));
    }, 20_000);
    child.once('message', (message: { done: string[] }) => {
      clearTimeout(timer);
      resolve(message.done);
    });
    child.once('error', reject);
  });
}

describe('socketIoTransport: memory before authentication', () => {
  it.each([
    ['2 messages of 64 MiB', 64 * MiB, 2],
    ['96 messages of 1 MiB', MiB, 96],
  ])(
    `holds at most a few MiB per unauthenticated socket (${SOCKETS} sockets, each sending %s)`,
    async (_name, messageBytes, messages) => {
      const listener = await listenForConnections(socketIoTransport(), '127.0.0.1:0', {
        token: 'memory-test-token',
        onConnection: () => {
          throw new Error('an unauthenticated peer must never become a connection');
        },
      });
      try {
        gc();
        const baseline = process.memoryUsage();
        let peakRss = baseline.rss;
        let peakExternal = baseline.external + baseline.arrayBuffers;
        const sampler = setInterval(() => {
          const now = process.memoryUsage();
          peakRss = Math.max(peakRss, now.rss);
          peakExternal = Math.max(peakExternal, now.external + now.arrayBuffers);
        }, 2);
        const reasons = await flood(listener.address, messageBytes, messages);
        clearInterval(sampler);
        const rssGrowth = peakRss - baseline.rss;
        const externalGrowth = peakExternal - baseline.external - baseline.arrayBuffers;
        console.log(
          `listener memory growth under ${SOCKETS} flooding sockets: rss ${(rssGrowth / MiB).toFixed(1)} MiB, ` +
            `buffers ${(externalGrowth / MiB).toFixed(1)} MiB (limit ${(SOCKETS * PER_SOCKET_BYTES) / MiB} MiB)`,
        );
        expect(reasons).toHaveLength(SOCKETS);
        expect(rssGrowth).toBeLessThan(SOCKETS * PER_SOCKET_BYTES);
        expect(externalGrowth).toBeLessThan(SOCKETS * PER_SOCKET_BYTES);
      } finally {
        await listener.close();
      }
    },
    30_000,
  );
});
