/**
 * The minimal custom transport of `fixtures/stream-transport.ts` passes the whole compliance
 * suite as it is: everything but moving frames comes from core's upgrader.
 */
import { expect, it } from 'vitest';
import { frameCodecGarbage, sendRawSocketBytes } from '../src/testing/raw-socket.js';
import { transportSuite } from '../src/testing/transport-suite.js';
import { streamTransport } from './fixtures/stream-transport.js';

const factory = {
  create: (options: { maxFrameBytes?: number | undefined }) => streamTransport(options.maxFrameBytes),
  listenAddress: () => '127.0.0.1:0',
};
const sendRawGarbage = (address: string, kind: 'malformed' | 'oversize') =>
  sendRawSocketBytes(address, frameCodecGarbage(kind));

const reports = [
  transportSuite(it, factory, { name: 'stream', sendRawGarbage }),
  transportSuite(it, factory, {
    name: 'stream+pool+reconnect',
    sendRawGarbage,
    maxPayloadBytes: 8 * 1024 * 1024,
    dial: { poolSize: 2, reconnect: { initialDelayMs: 20, maxDelayMs: 200 } },
  }),
];

it('runs the whole suite on the minimal transport (nothing skipped)', () => {
  for (const report of reports) expect(report.skipped).toEqual([]);
});
