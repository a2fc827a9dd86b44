/**
 * Core's transport compliance suite against tcpTransport: plain, TLS, and with reconnect.
 * (Pooling is not run here: with `poolSize`, two dials of one address share sockets by design,
 * while the suite counts one listener-side connection per dial. pool tests are in
 * tcp-transport.spec.ts.)
 */
import { transportSuite } from '@dinfer/core/testing';
import { it } from 'vitest';
import { tcpTransport } from '../src/index.js';
import { RawClient, tlsFixtures } from './helpers.js';

/** Opens an unauthenticated raw link, sends a bad frame, resolves once the listener drops it. */
async function sendRawGarbage(address: string, kind: 'malformed' | 'oversize'): Promise<void> {
  const client = await RawClient.connect(address);
  client.write(
    kind === 'oversize'
      ? new Uint8Array([0x7f, 0xff, 0xff, 0xff, 0xd1]) // announces a 2 GiB frame
      : new Uint8Array([0, 0, 0, 12, 0xd1, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 1, 2, 3]), // lying header length
  );
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.race([
      client.closed,
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`listener kept the ${kind} link open`)), 5000);
      }),
    ]);
  } finally {
    clearTimeout(timer);
    client.destroy();
  }
}

const listenAddress = () => '127.0.0.1:0';

transportSuite(
  it,
  { create: (options) => tcpTransport(options), listenAddress },
  { name: 'tcp', sendRawGarbage },
);

transportSuite(
  it,
  { create: (options) => tcpTransport({ ...options, tls: tlsFixtures }), listenAddress },
  { name: 'tcp+tls', sendRawGarbage, maxPayloadBytes: 16 * 1024 * 1024 },
);

transportSuite(
  it,
  {
    create: (options) =>
      tcpTransport({ ...options, reconnect: { initialDelayMs: 20, maxDelayMs: 200, jitter: true } }),
    listenAddress,
  },
  { name: 'tcp+reconnect', sendRawGarbage, maxPayloadBytes: 16 * 1024 * 1024 },
);
