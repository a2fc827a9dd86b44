/**
 * Core's transport compliance suite against tcpTransport: plain, TLS, reconnecting and pooled
 * (three links per connection) dials.
 */
import { frameCodecGarbage, sendRawSocketBytes, transportSuite } from '@dinfer/core/testing';
import { expect, it } from 'vitest';
import { tcpTransport } from '../src/index.js';
import { tlsFixtures } from './helpers.js';

/** Opens an unauthenticated raw socket, sends bytes that break the frame codec, resolves once the listener drops it. */
const sendRawGarbage = (address: string, kind: 'malformed' | 'oversize') =>
  sendRawSocketBytes(address, frameCodecGarbage(kind));

const listenAddress = () => '127.0.0.1:0';
const create = (options: { maxFrameBytes?: number | undefined }) => tcpTransport(options);

const reports = [
  transportSuite(it, { create, listenAddress }, { name: 'tcp', sendRawGarbage }),
  transportSuite(
    it,
    { create: (options) => tcpTransport({ ...options, tls: tlsFixtures }), listenAddress },
    { name: 'tcp+tls', sendRawGarbage, maxPayloadBytes: 16 * 1024 * 1024 },
  ),
  transportSuite(
    it,
    { create, listenAddress },
    {
      name: 'tcp+reconnect',
      sendRawGarbage,
      maxPayloadBytes: 16 * 1024 * 1024,
      dial: { reconnect: { initialDelayMs: 20, maxDelayMs: 200, jitter: true } },
    },
  ),
  transportSuite(
    it,
    { create, listenAddress },
    { name: 'tcp+pool', sendRawGarbage, maxPayloadBytes: 16 * 1024 * 1024, dial: { poolSize: 3 } },
  ),
];

it('runs every compliance test on every variant (none skipped)', () => {
  for (const report of reports) expect(report.skipped).toEqual([]);
});
