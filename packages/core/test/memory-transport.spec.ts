import { afterEach, describe, expect, it } from 'vitest';
import { dialConnection } from '../src/connection/dial-connection.js';
import { type FrameChannel, PRE_AUTH_MAX_FRAME_BYTES } from '../src/connection/frame-channel.js';
import { listenForConnections } from '../src/connection/listen-for-connections.js';
import { DinferErrorCode } from '../src/errors.js';
import { MemoryNetwork, memoryTransport, sendMemoryGarbage } from '../src/testing/memory-transport.js';
import { transportSuite } from '../src/testing/transport-suite.js';
import { type Envelope, type Transport, transportSymbol } from '../src/transport.js';

const network = new MemoryNetwork();

describe('memoryTransport compliance', () => {
  const factory = {
    create: (options: { maxFrameBytes?: number | undefined }) => memoryTransport({ ...options, network }),
    listenAddress: () => 'memory:0',
  };
  const sendRawGarbage = (address: string, kind: 'malformed' | 'oversize') =>
    sendMemoryGarbage(address, kind, network);
  const reports = [
    transportSuite(it, factory, { name: 'memory', sendRawGarbage }),
    transportSuite(it, factory, {
      name: 'memory+pool',
      sendRawGarbage,
      maxPayloadBytes: 8 * 1024 * 1024,
      dial: { poolSize: 3 },
    }),
    transportSuite(it, factory, {
      name: 'memory+reconnect',
      sendRawGarbage,
      maxPayloadBytes: 8 * 1024 * 1024,
      dial: { reconnect: { initialDelayMs: 5, maxDelayMs: 50 } },
    }),
  ];
  it('runs every compliance test on every variant (none skipped)', () => {
    for (const report of reports) expect(report.skipped).toEqual([]);
  });
});

describe('memoryTransport specifics', () => {
  const isolated = new MemoryNetwork();
  const opened: Array<{ close(): Promise<void> }> = [];
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((x) => x.close()));
  });

  it('binds named addresses once and frees them on close', async () => {
    const transport = memoryTransport({ network: isolated });
    const listener = await transport.listen('memory:alpha', () => {});
    expect(listener.address).toBe('memory:alpha');
    await expect(transport.listen('memory:alpha', () => {})).rejects.toMatchObject({
      code: DinferErrorCode.TRANSPORT_CONNECT,
    });
    await listener.close();
    const again = await transport.listen('memory:alpha', () => {});
    opened.push(again);
    const auto = await transport.listen('memory:0', () => {});
    opened.push(auto);
    expect(auto.address).toMatch(/^memory:auto-\d+$/);
  });

  it('rejects bad addresses and unknown names', async () => {
    const transport = memoryTransport({ network: isolated });
    await expect(transport.dial('tcp://x')).rejects.toMatchObject({ code: DinferErrorCode.INVALID_ARGUMENT });
    await expect(transport.dial('memory:nobody')).rejects.toMatchObject({
      code: DinferErrorCode.TRANSPORT_CONNECT,
    });
    await expect(transport.listen('memory:', () => {})).rejects.toMatchObject({
      code: DinferErrorCode.INVALID_ARGUMENT,
    });
    expect(() => memoryTransport({ maxFrameBytes: 0 })).toThrow(/maxFrameBytes/);
  });

  it('keeps networks apart and honours an aborted dial', async () => {
    const other = new MemoryNetwork();
    const listener = await memoryTransport({ network: isolated }).listen('memory:beta', () => {});
    opened.push(listener);
    await expect(memoryTransport({ network: other }).dial('memory:beta')).rejects.toMatchObject({
      code: DinferErrorCode.TRANSPORT_CONNECT,
    });
    const controller = new AbortController();
    controller.abort();
    await expect(
      memoryTransport({ network: isolated }).dial('memory:beta', { signal: controller.signal }),
    ).rejects.toMatchObject({
      code: DinferErrorCode.ABORTED,
    });
  });

  it('copies attachments so the sender may reuse its buffers', async () => {
    const transport = memoryTransport({ network: isolated });
    const received: Uint8Array[] = [];
    const listener = await listenForConnections(transport, 'memory:gamma', {
      onConnection: (connection) => connection.onMessage((message) => received.push(message.attachments[0]!)),
    });
    opened.push(listener);
    const connection = await dialConnection(transport, listener.address);
    opened.push(connection);
    const buffer = new Uint8Array([1, 2, 3]);
    await connection.send({ header: { type: 'x' }, attachments: [buffer] });
    buffer.fill(9);
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect([...received[0]!]).toEqual([1, 2, 3]);
  });

  it('hands out raw channels that accept at most 64 KiB until raised', async () => {
    const transport = memoryTransport({ network: isolated });
    const channels: FrameChannel[] = [];
    const listener = await transport.listen('memory:delta', (channel) => channels.push(channel));
    opened.push(listener);
    const dialer = await transport.dial(listener.address);
    const accepted = channels[0]!;
    const got: number[] = [];
    accepted.onEnvelope((envelope) => got.push(envelope.attachments[0]!.byteLength));
    const closed = new Promise<unknown>((resolve) => accepted.onClose(resolve));
    accepted.setMaxIncomingFrameBytes(256 * 1024);
    await dialer.send({ header: { type: 'x' }, attachments: [new Uint8Array(100_000)] });
    while (got.length === 0) await new Promise((resolve) => setTimeout(resolve, 1));
    accepted.setMaxIncomingFrameBytes(PRE_AUTH_MAX_FRAME_BYTES);
    await dialer.send({ header: { type: 'x' }, attachments: [new Uint8Array(100_000)] });
    expect(await closed).toMatchObject({ code: DinferErrorCode.FRAME_TOO_LARGE });
    expect(got).toEqual([100_000]);
  });
});

describe('transportSuite catches broken transports', () => {
  type Breakage = 'close-does-nothing' | 'messages-reordered' | 'cancel-dropped';

  /** A channel of the memory transport, broken on the listener side the way `breakage` says. */
  function wrap(channel: FrameChannel, breakage: Breakage): FrameChannel {
    return {
      get remoteAddress() {
        return channel.remoteAddress;
      },
      send: (envelope) => channel.send(envelope),
      onEnvelope: (handler) => {
        let held: Envelope | undefined;
        channel.onEnvelope((envelope) => {
          const kind = envelope.header.type === 'rpc' ? envelope.header.kind : undefined;
          if (breakage === 'cancel-dropped' && kind === 'cancel') return;
          if (breakage !== 'messages-reordered' || kind !== 'message') return handler(envelope);
          if (held === undefined) held = envelope;
          else {
            handler(envelope);
            handler(held);
            held = undefined;
          }
        });
      },
      onClose: (handler) => channel.onClose(handler),
      setMaxIncomingFrameBytes: (bytes) => channel.setMaxIncomingFrameBytes(bytes),
      close: (error) => {
        if (breakage !== 'close-does-nothing') channel.close(error);
      },
    };
  }

  function broken(breakage: Breakage): Transport {
    const base = memoryTransport({ network });
    return {
      [transportSymbol]: true,
      name: `broken-${breakage}`,
      capabilities: base.capabilities,
      listen: (address, onChannel, o) => base.listen(address, (c) => onChannel(wrap(c, breakage)), o),
      dial: (address, o) => base.dial(address, o),
    };
  }

  it.each([
    ['close-does-nothing', 'memory: closes a channel that does not authenticate within handshakeTimeoutMs'],
    ['messages-reordered', 'memory: delivers 1000 one-way messages in order (and messages the other way)'],
    ['cancel-dropped', 'memory: aborts requests with DINFER_ERR_ABORTED'],
  ] as const)('fails %s', async (breakage, testName) => {
    const tests = new Map<string, () => Promise<void>>();
    transportSuite(
      (name, fn) => tests.set(name, fn),
      { create: () => broken(breakage), listenAddress: () => 'memory:0' },
      { name: 'memory', waitMs: 300, report: () => {} },
    );
    const run = tests.get(testName);
    expect(run, `suite test "${testName}" exists`).toBeDefined();
    await expect(run!()).rejects.toThrow();
    // The same test passes against the real memory transport.
    const good = new Map<string, () => Promise<void>>();
    transportSuite(
      (name, fn) => good.set(name, fn),
      { create: (options) => memoryTransport({ ...options, network }), listenAddress: () => 'memory:0' },
      { name: 'memory', waitMs: 2000, report: () => {} },
    );
    await good.get(testName)!();
  });

  it('reports the tests it skips, and registers them when the hooks are given', () => {
    const messages: string[] = [];
    const factory = { create: () => memoryTransport({ network }), listenAddress: () => 'memory:0' };
    const bare = transportSuite(() => {}, factory, {
      name: 'bare',
      reconnect: false,
      report: (m) => messages.push(m),
    });
    expect(bare.skipped).toEqual([
      'bare: drops a raw link sending a malformed frame; other connections keep working (no sendRawGarbage hook given)',
      'bare: drops a raw link sending a oversize frame; other connections keep working (no sendRawGarbage hook given)',
      'bare: reconnects a dialed connection after the listener restarts on the same address (reconnect: false)',
    ]);
    expect(messages).toHaveLength(1);
    expect(messages[0]).toContain('skipped 3 test(s)');
    const full = transportSuite(() => {}, factory, {
      name: 'full',
      sendRawGarbage: (address, kind) => sendMemoryGarbage(address, kind, network),
      report: (m) => messages.push(m),
    });
    expect(full.skipped).toEqual([]);
    expect(full.registered).toHaveLength(bare.registered.length + 3);
    expect(messages).toHaveLength(1);
  });
});
