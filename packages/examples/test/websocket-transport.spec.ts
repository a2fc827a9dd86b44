/**
 * The custom transport example against core's transport compliance suite: plain, pooled and
 * reconnecting dials, hostile input included.
 */
import { frameCodecGarbage, transportSuite } from '@dinfer/core/testing';
import { expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { webSocketTransport } from '../src/custom/websocket-transport.js';

/** Sends bytes that break the frame codec over a raw WebSocket; resolves once the listener drops it. */
function sendRawGarbage(address: string, kind: 'malformed' | 'oversize'): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(`ws://${address}/dinfer`);
    const timer = setTimeout(() => {
      socket.terminate();
      reject(new Error(`listener ${address} kept the raw WebSocket open`));
    }, 5000);
    socket.once('open', () => socket.send(frameCodecGarbage(kind), { binary: true }));
    socket.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
    socket.on('error', () => {});
  });
}

const listenAddress = () => '127.0.0.1:0';
const create = (options: { maxFrameBytes?: number | undefined }) => webSocketTransport(options);

const reports = [
  transportSuite(it, { create, listenAddress }, { name: 'websocket', sendRawGarbage }),
  transportSuite(
    it,
    { create, listenAddress },
    { name: 'websocket+pool', sendRawGarbage, maxPayloadBytes: 16 * 1024 * 1024, dial: { poolSize: 2 } },
  ),
  transportSuite(
    it,
    { create, listenAddress },
    {
      name: 'websocket+reconnect',
      sendRawGarbage,
      maxPayloadBytes: 16 * 1024 * 1024,
      dial: { reconnect: { initialDelayMs: 20, maxDelayMs: 200, jitter: true } },
    },
  ),
];

it('runs every compliance test on every variant (none skipped)', () => {
  for (const report of reports) expect(report.skipped).toEqual([]);
});
