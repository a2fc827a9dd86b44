import { randomBytes } from 'node:crypto';
import { createServer, connect as netConnect, type Socket } from 'node:net';
import {
  type Connection,
  type DialConnectionOptions,
  DinferErrorCode,
  dialConnection,
  type Envelope,
  type FrameChannel,
  isDinferError,
  isTransport,
  type Listener,
  type ListenForConnectionsOptions,
  listenForConnections,
  type Transport,
} from '@dinfer/core';
import { afterEach, describe, expect, it } from 'vitest';
import { parseTcpAddress, socketChannel, tcpTransport } from '../src/index.js';
import { RawClient, rpcRequest, tlsFixtures, waitFor } from './helpers.js';

const TOKEN = 'test-token';
const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function echoListener(
  transport: Transport,
  address = '127.0.0.1:0',
  options: Partial<ListenForConnectionsOptions> = { token: TOKEN },
): Promise<{ listener: Listener; accepted: Connection[] }> {
  const accepted: Connection[] = [];
  const listener = await listenForConnections(transport, address, {
    ...options,
    onConnection: (connection) => {
      accepted.push(connection);
      connection.onRequest(async (request) => ({
        header: { type: 'echo', of: request.header.type, via: connection.id },
        attachments: request.attachments,
      }));
    },
  });
  cleanups.push(() => listener.close());
  return { listener, accepted };
}

/** Dials `address` through core's upgrader (the suite token unless told otherwise). */
function dial(transport: Transport, address: string, options: DialConnectionOptions = { token: TOKEN }) {
  return dialConnection(transport, address, options);
}

/** `transport`, with every channel its listener accepts (and the requests each carried) recorded. */
function countingChannels(transport: Transport): { transport: Transport; requestsPerChannel: number[] } {
  const requestsPerChannel: number[] = [];
  return {
    requestsPerChannel,
    transport: {
      ...transport,
      listen: (address, onChannel, options) =>
        transport.listen(
          address,
          (channel: FrameChannel) => {
            const index = requestsPerChannel.push(0) - 1;
            const onEnvelope = channel.onEnvelope.bind(channel);
            channel.onEnvelope = (handler) =>
              onEnvelope((envelope) => {
                if (envelope.header.kind === 'request') requestsPerChannel[index]! += 1;
                handler(envelope);
              });
            onChannel(channel);
          },
          options,
        ),
    },
  };
}

function expectError(error: unknown, code: string): void {
  expect(isDinferError(error)).toBe(true);
  expect((error as { code: string }).code).toBe(code);
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected a rejection');
}

describe('tcpTransport basics', () => {
  it('is a branded transport with its capabilities', async () => {
    const transport = tcpTransport({ maxFrameBytes: 1 << 20 });
    expect(isTransport(transport)).toBe(true);
    expect(transport.name).toBe('tcp');
    expect(transport.capabilities).toEqual({ maxFrameBytes: 1 << 20 });
    await expect(dialConnection(transport, '127.0.0.1:1', { poolSize: 0 })).rejects.toThrow(/poolSize/);
    await expect(
      dialConnection(transport, '127.0.0.1:1', { reconnect: { initialDelayMs: 10, maxDelayMs: 1 } }),
    ).rejects.toThrow(/maxDelayMs/);
    expect(() => tcpTransport({ maxFrameBytes: 10 })).toThrow(/maxFrameBytes/);
  });

  it('parses and rejects addresses', () => {
    expect(parseTcpAddress('[::1]:80')).toEqual({ host: '::1', port: 80 });
    expect(parseTcpAddress('tcp://example.org:7000')).toEqual({ host: 'example.org', port: 7000 });
    for (const bad of ['nope', '::1:80', '[::1]80', 'host:99999', ':80', 'host:']) {
      expect(() => parseTcpAddress(bad)).toThrow(/invalid TCP address/);
    }
  });

  it('echoes attachments byte-exact and reports the real port', async () => {
    const transport = tcpTransport();
    const { listener } = await echoListener(transport);
    expect(parseTcpAddress(listener.address).port).toBeGreaterThan(0);
    const connection = await dial(transport, listener.address);
    cleanups.push(() => connection.close());
    const payload = randomBytes(3 << 20);
    const reply = await connection.request({
      header: { type: 'big' },
      attachments: [payload, new Uint8Array(0)],
    });
    expect(reply.header.of).toBe('big');
    expect(Buffer.from(reply.attachments[0]!).equals(payload)).toBe(true);
    expect(reply.attachments[1]!.byteLength).toBe(0);
  });

  it('listens and dials over IPv6', async () => {
    const transport = tcpTransport();
    const { listener } = await echoListener(transport, '[::1]:0');
    expect(listener.address).toMatch(/^\[::1\]:\d+$/);
    const connection = await dial(transport, listener.address);
    cleanups.push(() => connection.close());
    expect((await connection.request({ header: { type: 'v6' }, attachments: [] })).header.of).toBe('v6');
  });

  it('refuses a wrong token and keeps serving others', async () => {
    const { listener } = await echoListener(tcpTransport());
    expectError(
      await rejection(dial(tcpTransport(), listener.address, { token: 'wrong' })),
      DinferErrorCode.AUTH_FAILED,
    );
    const ok = await dial(tcpTransport(), listener.address);
    cleanups.push(() => ok.close());
    expect((await ok.request({ header: { type: 'after' }, attachments: [] })).header.of).toBe('after');
  });

  it('fails to dial a closed port with TRANSPORT_CONNECT', async () => {
    const { listener } = await echoListener(tcpTransport(), undefined, {});
    const address = listener.address;
    await listener.close();
    expectError(await rejection(dial(tcpTransport(), address, {})), DinferErrorCode.TRANSPORT_CONNECT);
  });

  it('refuses to send a frame above maxFrameBytes and stays open', async () => {
    const transport = tcpTransport({ maxFrameBytes: 64 * 1024 });
    const { listener } = await echoListener(transport);
    const connection = await dial(transport, listener.address);
    cleanups.push(() => connection.close());
    const error = await rejection(
      connection.request({ header: { type: 'x' }, attachments: [new Uint8Array(70_000)] }),
    );
    expectError(error, DinferErrorCode.FRAME_TOO_LARGE);
    expect(connection.isOpen).toBe(true);
    expect((await connection.request({ header: { type: 'small' }, attachments: [] })).header.of).toBe(
      'small',
    );
  });
});

describe('tcpTransport with TLS', () => {
  it('serves requests over TLS verified against the test CA', async () => {
    const transport = tcpTransport({ tls: tlsFixtures });
    const { listener } = await echoListener(transport);
    for (const host of ['127.0.0.1', 'localhost']) {
      const connection = await dial(transport, `${host}:${parseTcpAddress(listener.address).port}`);
      cleanups.push(() => connection.close());
      const payload = randomBytes(200_000);
      const reply = await connection.request({ header: { type: 'tls' }, attachments: [payload] });
      expect(Buffer.from(reply.attachments[0]!).equals(payload)).toBe(true);
    }
  });

  it('refuses a listener whose certificate does not verify', async () => {
    const { listener } = await echoListener(tcpTransport({ tls: tlsFixtures }));
    const untrusting = tcpTransport({ tls: { ca: tlsFixtures.cert } });
    expectError(await rejection(dial(untrusting, listener.address)), DinferErrorCode.TRANSPORT_CONNECT);
    // A plain-TCP dialer cannot complete the handshake with a TLS listener either.
    const plain = dial(tcpTransport(), listener.address, { token: TOKEN, handshakeTimeoutMs: 500 });
    expect(isDinferError(await rejection(plain))).toBe(true);
  });
});

describe('framing on a real socket', () => {
  it('decodes a request arriving one byte at a time (split reads)', async () => {
    const transport = tcpTransport();
    const { listener } = await echoListener(transport);
    const client = await RawClient.authenticated(listener.address, TOKEN);
    cleanups.push(() => client.destroy());
    const payload = randomBytes(300);
    const bytes = rpcRequest(1, { type: 'slow' }, [payload]);
    for (let i = 0; i < bytes.length; i++) {
      client.write(bytes.subarray(i, i + 1));
      if (i % 50 === 0) await new Promise((resolve) => setTimeout(resolve, 1));
    }
    const reply = await client.next();
    expect(reply.header).toMatchObject({ type: 'rpc', kind: 'response', id: 1, body: { of: 'slow' } });
    expect(Buffer.from(reply.attachments[0]!).equals(payload)).toBe(true);
  });

  it('closes a connection that sends garbage after authenticating; others keep working', async () => {
    const transport = tcpTransport();
    const { listener } = await echoListener(transport);
    const good = await dial(transport, listener.address);
    cleanups.push(() => good.close());
    const bad = await RawClient.authenticated(listener.address, TOKEN);
    bad.write(
      new Uint8Array([0, 0, 0, 20, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19]),
    );
    await bad.closed;
    expect((await good.request({ header: { type: 'still' }, attachments: [] })).header.of).toBe('still');
  });

  it('refuses large frames before authentication and closes idle sockets at the handshake timeout', async () => {
    const transport = tcpTransport();
    const { listener } = await echoListener(transport, undefined, { token: TOKEN, handshakeTimeoutMs: 300 });
    const big = await RawClient.connect(listener.address);
    big.write(new Uint8Array([0, 0x10, 0, 0])); // a 1 MiB frame announced before auth
    await big.closed;
    const idle = await RawClient.connect(listener.address);
    const started = Date.now();
    await idle.closed;
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    expect(Date.now() - started).toBeLessThan(3000);
  });

  it('holds the sender while a slow reader drains (bounded memory)', async () => {
    let serverSide: Socket | undefined;
    const server = createServer((socket) => {
      serverSide = socket;
      socket.pause();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise((resolve) => server.close(resolve)));
    const port = (server.address() as { port: number }).port;
    const socket = netConnect({ host: '127.0.0.1', port });
    await new Promise((resolve) => socket.once('connect', resolve));
    await waitFor(() => serverSide !== undefined);
    const channel = socketChannel(socket, { maxFrameBytes: 1 << 24 });
    cleanups.push(() => {
      channel.close();
      socket.destroy();
      serverSide?.destroy();
    });

    const frameBytes = 1 << 20;
    const frames = 64;
    let resolved = 0;
    let maxWritable = 0;
    const sending = (async () => {
      for (let i = 0; i < frames; i++) {
        await channel.send({
          header: { type: 'bulk', i },
          attachments: [new Uint8Array(frameBytes).fill(i)],
        });
        resolved++;
        maxWritable = Math.max(maxWritable, socket.writableLength);
      }
    })();
    await new Promise((resolve) => setTimeout(resolve, 300));
    // The reader is paused: only what fits in the kernel buffers can have been handed over.
    expect(resolved).toBeLessThan(frames / 2);
    const stalledAt = resolved;
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(resolved).toBe(stalledAt);
    expect(socket.writableLength).toBeLessThanOrEqual(frameBytes + 1024);

    // Let the reader go: everything arrives, intact and in order.
    const received = socketChannel(serverSide!, { maxFrameBytes: 1 << 24 });
    const seen: Envelope[] = [];
    received.onEnvelope((envelope) => seen.push(envelope));
    serverSide!.resume();
    await sending;
    await waitFor(() => seen.length === frames, 10_000, 'all frames');
    seen.forEach((envelope, i) => {
      expect(envelope.header.i).toBe(i);
      expect(envelope.attachments[0]![frameBytes - 1]).toBe(i);
    });
    expect(maxWritable).toBeLessThanOrEqual(frameBytes + 1024);
  });
});

describe('reconnect', () => {
  it('redials after the listener restarts; in-flight requests fail, new ones wait', async () => {
    const serverTransport = tcpTransport();
    let release: (() => void) | undefined;
    const start = (address: string) =>
      listenForConnections(serverTransport, address, {
        token: TOKEN,
        onConnection: (connection) =>
          connection.onRequest(async (request) => {
            if (request.header.type === 'hang') await new Promise<void>((resolve) => (release = resolve));
            return { header: { type: 'ok', of: request.header.type }, attachments: [] };
          }),
      });
    let listener = await start('127.0.0.1:0');
    const address = listener.address;
    const connection = await dial(tcpTransport(), address, {
      token: TOKEN,
      reconnect: { initialDelayMs: 20, maxDelayMs: 100, jitter: true },
    });
    cleanups.push(() => connection.close());
    expect((await connection.request({ header: { type: 'first' }, attachments: [] })).header.of).toBe(
      'first',
    );

    const hanging = rejection(connection.request({ header: { type: 'hang' }, attachments: [] }));
    await waitFor(() => release !== undefined);
    await listener.close();
    release?.();
    expectError(await hanging, DinferErrorCode.TRANSPORT_CLOSED);
    expect(connection.isOpen).toBe(true);

    // Issued while the listener is down: waits for the redial.
    const waiting = connection.request({ header: { type: 'during' }, attachments: [] }, { timeoutMs: 5000 });
    await new Promise((resolve) => setTimeout(resolve, 150));
    listener = await start(address);
    cleanups.push(() => listener.close());
    expect((await waiting).header.of).toBe('during');
    expect((await connection.request({ header: { type: 'after' }, attachments: [] })).header.of).toBe(
      'after',
    );
  });

  it('redials when the link drops without a goodbye, but not after a deliberate close by the peer', async () => {
    const { listener, accepted } = await echoListener(tcpTransport(), undefined, {});
    // A TCP proxy in between, so the test can cut the link like a crash or a cable would.
    const piped = new Set<Socket>();
    const target = parseTcpAddress(listener.address);
    const proxy = createServer((inbound) => {
      const outbound = netConnect({ host: target.host, port: target.port });
      for (const s of [inbound, outbound]) {
        piped.add(s);
        s.on('error', () => {});
        s.on('close', () => piped.delete(s));
      }
      inbound.pipe(outbound).pipe(inbound);
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise((resolve) => proxy.close(resolve)));
    const proxyAddress = `127.0.0.1:${(proxy.address() as { port: number }).port}`;

    const connection = await dial(tcpTransport(), proxyAddress, {
      reconnect: { initialDelayMs: 10, maxDelayMs: 50 },
    });
    cleanups.push(() => connection.close());
    expect((await connection.request({ header: { type: 'a' }, attachments: [] })).header.of).toBe('a');
    for (const s of piped) s.destroy();
    // The drop is noticed asynchronously; a request racing it may still fail (documented).
    await waitFor(() => accepted.length === 2, 5000, 'the redial');
    expect(
      (await connection.request({ header: { type: 'b' }, attachments: [] }, { timeoutMs: 5000 })).header.of,
    ).toBe('b');
    expect(accepted.length).toBe(2);
    expect(connection.isOpen).toBe(true);

    // The listener side hangs up on purpose: the dialer accepts that and closes for good.
    await accepted[1]!.close();
    expect(await connection.closed).toBeUndefined();
    expect(connection.isOpen).toBe(false);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(accepted.length).toBe(2);
  });

  it('times out a request waiting for a reconnect, and gives up after maxAttempts', async () => {
    const { listener } = await echoListener(tcpTransport(), undefined, {});
    const connection = await dial(tcpTransport(), listener.address, {
      reconnect: { initialDelayMs: 10, maxDelayMs: 20, maxAttempts: 3, jitter: false },
    });
    await listener.close();
    expectError(
      await rejection(connection.request({ header: { type: 'x' }, attachments: [] }, { timeoutMs: 20 })),
      DinferErrorCode.TIMEOUT,
    );
    const reason = await connection.closed;
    expect(reason?.code).toBe(DinferErrorCode.TRANSPORT_CONNECT);
    expect(connection.isOpen).toBe(false);
    expectError(
      await rejection(connection.request({ header: { type: 'y' }, attachments: [] })),
      'DINFER_ERR_TRANSPORT_CLOSED',
    );
  });
});

describe('pool', () => {
  it('spreads requests round-robin over poolSize sockets that the listener sees as one connection', async () => {
    const counted = countingChannels(tcpTransport());
    const { listener, accepted } = await echoListener(counted.transport);
    const client = tcpTransport();
    const a = await dial(client, listener.address, { token: TOKEN, poolSize: 3 });
    const b = await dial(client, listener.address, { token: TOKEN, poolSize: 3 });
    expect(a).not.toBe(b);
    expect(accepted.length).toBe(2);
    expect(counted.requestsPerChannel).toHaveLength(6);
    const via = new Map<unknown, number>();
    for (let i = 0; i < 12; i++) {
      const reply = await (i % 2 === 0 ? a : b).request({ header: { type: 'rr' }, attachments: [] });
      via.set(reply.header.via, (via.get(reply.header.via) ?? 0) + 1);
    }
    expect([...via.values()]).toEqual([6, 6]);
    expect(counted.requestsPerChannel).toEqual([2, 2, 2, 2, 2, 2]);

    // Closing one pooled connection leaves the other up; closing it closes its sockets too.
    await a.close();
    expect(a.isOpen).toBe(false);
    expect((await b.request({ header: { type: 'b' }, attachments: [] })).header.of).toBe('b');
    await waitFor(() => !accepted[0]!.isOpen, 3000, 'the first pooled connection to close');
    expect(accepted[1]!.isOpen).toBe(true);
    await b.close();
    await waitFor(() => accepted.every((c) => !c.isOpen), 3000, 'pooled sockets to close');

    // A later dial builds a fresh pool.
    const c = await dial(client, listener.address, { token: TOKEN, poolSize: 3 });
    cleanups.push(() => c.close());
    expect(accepted.length).toBe(3);
    expect(counted.requestsPerChannel).toHaveLength(9);
    expect((await c.request({ header: { type: 'c' }, attachments: [] })).header.of).toBe('c');
  });

  it('routes requests from the listener to the pool handler', async () => {
    let server: Connection | undefined;
    const listener = await listenForConnections(tcpTransport(), '127.0.0.1:0', {
      onConnection: (connection) => {
        server = connection;
      },
    });
    cleanups.push(() => listener.close());
    const handle = await dial(tcpTransport(), listener.address, { poolSize: 2 });
    cleanups.push(() => handle.close());
    handle.onRequest(async (request, context) => ({
      header: { type: 'from-worker', same: context.connection === handle, of: request.header.type },
      attachments: [],
    }));
    await waitFor(() => server !== undefined);
    for (let i = 0; i < 4; i++) {
      const reply = await server!.request({ header: { type: 'down' }, attachments: [] });
      expect(reply.header).toEqual({ type: 'from-worker', same: true, of: 'down' });
    }
  });
});
