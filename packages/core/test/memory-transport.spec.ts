import { afterEach, describe, expect, it } from 'vitest';
import type { Connection } from '../src/connection/connection.js';
import { DinferErrorCode } from '../src/errors.js';
import { MemoryNetwork, memoryTransport, sendMemoryGarbage } from '../src/testing/memory-transport.js';
import { transportSuite } from '../src/testing/transport-suite.js';
import { type Envelope, type Transport, transportSymbol } from '../src/transport.js';

const network = new MemoryNetwork();

describe('memoryTransport compliance', () => {
  transportSuite(
    it,
    {
      create: (options) => memoryTransport({ ...options, network }),
      listenAddress: () => 'memory:0',
    },
    {
      name: 'memory',
      sendRawGarbage: (address, kind) => sendMemoryGarbage(address, kind, network),
    },
  );
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
    const listener = await transport.listen('memory:gamma', (connection) => {
      connection.onMessage((message) => received.push(message.attachments[0]!));
    });
    opened.push(listener);
    const connection = await transport.dial(listener.address);
    opened.push(connection);
    const buffer = new Uint8Array([1, 2, 3]);
    await connection.send({ header: { type: 'x' }, attachments: [buffer] });
    buffer.fill(9);
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect([...received[0]!]).toEqual([1, 2, 3]);
  });
});

describe('transportSuite catches broken transports', () => {
  type Breakage = 'close-does-nothing' | 'messages-reordered' | 'abort-ignored';

  function wrap(c: Connection, overrides: Partial<Connection>): Connection {
    return {
      get id() {
        return c.id;
      },
      get remoteAddress() {
        return c.remoteAddress;
      },
      get isOpen() {
        return c.isOpen;
      },
      closed: c.closed,
      send: (m, o) => c.send(m, o),
      request: (m, o) => c.request(m, o),
      onRequest: (h) => c.onRequest(h),
      onMessage: (h) => c.onMessage(h),
      close: (r) => c.close(r),
      ...overrides,
    };
  }

  function broken(breakage: Breakage): Transport {
    const base = memoryTransport({ network, token: 'transport-suite-token' });
    return {
      [transportSymbol]: true,
      name: `broken-${breakage}`,
      capabilities: base.capabilities,
      listen: (address, onConnection, o) =>
        base.listen(
          address,
          (c) => {
            if (breakage !== 'messages-reordered') return onConnection(c);
            onConnection(
              wrap(c, {
                onMessage: (handler) => {
                  let held: Envelope | undefined;
                  c.onMessage((m, conn) => {
                    if (held === undefined) held = m;
                    else {
                      handler(m, conn);
                      handler(held, conn);
                      held = undefined;
                    }
                  });
                },
              }),
            );
          },
          o,
        ),
      dial: async (address, o) => {
        const c = await base.dial(address, o);
        if (breakage === 'close-does-nothing') return wrap(c, { close: async () => {} });
        if (breakage === 'abort-ignored')
          return wrap(c, { request: (m, opts) => c.request(m, { timeoutMs: opts?.timeoutMs }) });
        return c;
      },
    };
  }

  it.each([
    [
      'close-does-nothing',
      'memory: fails pending requests on both sides with TRANSPORT_CLOSED when the dialer closes',
    ],
    ['messages-reordered', 'memory: delivers 1000 one-way messages in order (and messages the other way)'],
    ['abort-ignored', 'memory: aborts requests with DINFER_ERR_ABORTED'],
  ] as const)('fails %s', async (breakage, testName) => {
    const tests = new Map<string, () => Promise<void>>();
    transportSuite(
      (name, fn) => tests.set(name, fn),
      { create: () => broken(breakage), listenAddress: () => 'memory:0' },
      { name: 'memory', waitMs: 300 },
    );
    const run = tests.get(testName);
    expect(run, `suite test "${testName}" exists`).toBeDefined();
    await expect(run!()).rejects.toThrow();
    // The same test passes against the real memory transport.
    const good = new Map<string, () => Promise<void>>();
    transportSuite(
      (name, fn) => good.set(name, fn),
      { create: (options) => memoryTransport({ ...options, network }), listenAddress: () => 'memory:0' },
      { name: 'memory', waitMs: 2000 },
    );
    await good.get(testName)!();
  });
});
