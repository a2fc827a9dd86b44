import { afterEach, describe, expect, it } from 'vitest';
import { authenticateDialerSide, authenticateListenerSide } from '../src/connection/authenticate.js';
import type { Connection } from '../src/connection/connection.js';
import { dialConnection } from '../src/connection/dial-connection.js';
import type { FrameChannel } from '../src/connection/frame-channel.js';
import { listenForConnections } from '../src/connection/listen-for-connections.js';
import { DinferErrorCode } from '../src/errors.js';
import type { Metrics } from '../src/metrics.js';
import { constantTimeEqual } from '../src/protocol/handshake.js';
import { memoryChannelPair } from '../src/testing/memory-channel.js';
import { MemoryNetwork, memoryTransport } from '../src/testing/memory-transport.js';
import type { Envelope, Listener, Transport } from '../src/transport.js';

const TOKEN = 'upgrader-spec-token';
const opened: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((x) => x.close()));
});

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A memory transport whose listener records every channel it accepts. */
function recorded(network: MemoryNetwork): { transport: Transport; channels: FrameChannel[] } {
  const base = memoryTransport({ network });
  const channels: FrameChannel[] = [];
  return {
    channels,
    transport: {
      ...base,
      listen: (address, onChannel, options) =>
        base.listen(address, (channel) => onChannel(channels[channels.push(channel) - 1]!), options),
    },
  };
}

async function serve(transport: Transport, token: string | undefined = TOKEN, address = 'memory:0') {
  const accepted: Connection[] = [];
  const listener = await listenForConnections(transport, address, {
    token,
    onConnection: (connection) => {
      accepted.push(connection);
      connection.onRequest(async (request) => ({
        header: { type: 'echo', of: request.header.type },
        attachments: request.attachments,
      }));
    },
  });
  opened.push(listener);
  return { listener, accepted };
}

describe('session keys', () => {
  it('gives both ends the same secret key, a different one per connection, never on the wire', async () => {
    const network = new MemoryNetwork();
    const { transport, channels } = recorded(network);
    const sent: Envelope[] = [];
    const original = transport.listen;
    const { listener, accepted } = await serve({
      ...transport,
      listen: (address, onChannel, options) =>
        original(
          address,
          (channel) => {
            const send = channel.send.bind(channel);
            channel.send = (envelope) => {
              sent.push(envelope);
              return send(envelope);
            };
            onChannel(channel);
          },
          options,
        ),
    });
    const a = await dialConnection(transport, listener.address, { token: TOKEN });
    const b = await dialConnection(transport, listener.address, { token: TOKEN });
    opened.push(a, b);
    await sleep(5);
    expect(channels).toHaveLength(2);
    const [ra, rb] = accepted;
    expect(a.session?.authenticated).toBe(true);
    expect(a.session?.key.byteLength).toBe(32);
    expect(hex(a.session!.key)).toBe(hex(ra!.session!.key));
    expect(hex(b.session!.key)).toBe(hex(rb!.session!.key));
    expect(hex(a.session!.key)).not.toBe(hex(b.session!.key));
    expect(a.session!.id).toBe(ra!.session!.id);
    const wire = JSON.stringify(sent.map((e) => e.header));
    expect(wire).not.toContain(Buffer.from(a.session!.key).toString('base64'));
    expect(wire).not.toContain(TOKEN);
  });

  it('marks sessions of a cluster without a token as not authenticated', async () => {
    const [l, d] = memoryChannelPair();
    const [listener, dialer] = await Promise.all([
      authenticateListenerSide(l, undefined),
      authenticateDialerSide(d, undefined),
    ]);
    expect(listener.session.authenticated).toBe(false);
    expect(hex(listener.session.key)).toBe(hex(dialer.session.key));
  });

  it('refuses a link that joins a session without its key, and joins to sessions that are gone', async () => {
    const [l1, d1] = memoryChannelPair();
    const [first] = await Promise.all([
      authenticateListenerSide(l1, TOKEN),
      authenticateDialerSide(d1, TOKEN),
    ]);
    const sessions = (id: string) => (id === first.session.id ? first.session : undefined);
    const forged = { ...first.session, key: new Uint8Array(32) };
    const [l2, d2] = memoryChannelPair();
    const refused = await Promise.allSettled([
      authenticateListenerSide(l2, TOKEN, { sessions }),
      authenticateDialerSide(d2, TOKEN, { join: forged }),
    ]);
    expect(refused.map((r) => (r.status === 'rejected' ? r.reason.code : 'ok'))).toEqual([
      DinferErrorCode.AUTH_FAILED,
      DinferErrorCode.AUTH_FAILED,
    ]);
    const [l3, d3] = memoryChannelPair();
    const gone = await Promise.allSettled([
      authenticateListenerSide(l3, TOKEN, { sessions: () => undefined }),
      authenticateDialerSide(d3, TOKEN, { join: first.session }),
    ]);
    expect(gone.map((r) => (r.status === 'rejected' ? r.reason.code : 'ok'))).toEqual([
      DinferErrorCode.TRANSPORT_CLOSED,
      DinferErrorCode.TRANSPORT_CLOSED,
    ]);
    const [l4, d4] = memoryChannelPair();
    const joined = await Promise.all([
      authenticateListenerSide(l4, TOKEN, { sessions }),
      authenticateDialerSide(d4, TOKEN, { join: first.session }),
    ]);
    expect(joined.map((c) => [c.joined, c.session.id])).toEqual([
      [true, first.session.id],
      [true, first.session.id],
    ]);
  });

  it('compares proofs in constant time over equal lengths', () => {
    expect(constantTimeEqual('abc', 'abc')).toBe(true);
    expect(constantTimeEqual('abc', 'abd')).toBe(false);
    expect(constantTimeEqual('abc', 'abcd')).toBe(false);
  });
});

describe('pooled connections', () => {
  it('spread requests over the links, keep messages in order, and survive one link dropping', async () => {
    const network = new MemoryNetwork();
    const { transport, channels } = recorded(network);
    const { listener, accepted } = await serve(transport);
    const pooled = await dialConnection(transport, listener.address, { token: TOKEN, poolSize: 3 });
    opened.push(pooled);
    expect(channels).toHaveLength(3);
    await sleep(5);
    expect(accepted).toHaveLength(1);
    const got: number[] = [];
    accepted[0]!.onMessage((message) => got.push(message.header.i as number));
    for (let i = 0; i < 50; i++) await pooled.send({ header: { type: 'm', i }, attachments: [] });
    const replies = await Promise.all(
      Array.from({ length: 30 }, (_, i) => pooled.request({ header: { type: `r${i}` }, attachments: [] })),
    );
    expect(replies.map((r) => r.header.of)).toEqual(Array.from({ length: 30 }, (_, i) => `r${i}`));
    await sleep(5);
    expect(got).toEqual(Array.from({ length: 50 }, (_, i) => i));
    // One link drops (not the first): requests keep working on the others.
    channels[2]!.close();
    await sleep(5);
    expect(pooled.isOpen).toBe(true);
    expect(accepted[0]!.isOpen).toBe(true);
    const after = await pooled.request({ header: { type: 'after' }, attachments: [] });
    expect(after.header.of).toBe('after');
  });

  it('redial a dropped link into the same session, and a fresh session after the listener restarts', async () => {
    const network = new MemoryNetwork();
    const { transport, channels } = recorded(network);
    const counts: Record<string, number> = {};
    const metrics: Metrics = {
      increment: (name) => {
        counts[name] = (counts[name] ?? 0) + 1;
      },
      observe: () => {},
      set: () => {},
    };
    let served = await serve(transport);
    const address = served.listener.address;
    const pooled = await dialConnection(transport, address, {
      token: TOKEN,
      poolSize: 2,
      reconnect: { initialDelayMs: 5, maxDelayMs: 20 },
      metrics,
    });
    opened.push(pooled);
    const firstSession = pooled.session!.id;
    channels[1]!.close();
    // The redial's handshake finishes on its own time (a loaded machine is slow): wait for it,
    // bounded, before looking.
    for (
      let waited = 0;
      counts.dinfer_transport_reconnects_total === undefined && waited < 5000;
      waited += 2
    ) {
      await sleep(2);
    }
    expect(channels.length).toBeGreaterThanOrEqual(3);
    expect(pooled.session!.id).toBe(firstSession);
    expect(served.accepted).toHaveLength(1);
    expect(counts.dinfer_transport_reconnects_total).toBe(1);

    await served.listener.close();
    opened.splice(opened.indexOf(served.listener), 1);
    served = await serve(transport, TOKEN, address);
    expect(served.listener.address).toBe(address);
    // Both links come back (a request racing the drop may fail: it is in flight on a lost link).
    while ((counts.dinfer_transport_reconnects_total ?? 0) < 3) await sleep(2);
    const reply = await pooled.request({ header: { type: 'back' }, attachments: [] }, { timeoutMs: 5000 });
    expect(reply.header.of).toBe('back');
    expect(pooled.session!.id).not.toBe(firstSession);
    while (channels.length < 5) await sleep(2);
    expect(served.accepted).toHaveLength(1);
  });

  it('close for good when a redial meets a wrong token', async () => {
    const network = new MemoryNetwork();
    const transport = memoryTransport({ network });
    const first = await serve(transport);
    const address = first.listener.address;
    const dialer = await dialConnection(transport, address, {
      token: TOKEN,
      reconnect: { initialDelayMs: 5, maxDelayMs: 20 },
    });
    opened.push(dialer);
    await first.listener.close();
    opened.splice(opened.indexOf(first.listener), 1);
    await serve(transport, 'another-token', address);
    const reason = await dialer.closed;
    expect(reason?.code).toBe(DinferErrorCode.AUTH_FAILED);
  });
});

describe('listenForConnections', () => {
  it('closes accepted connections cleanly on close() and tells dialers it is shutting down', async () => {
    const transport = memoryTransport({ network: new MemoryNetwork() });
    const { listener, accepted }: { listener: Listener; accepted: Connection[] } = await serve(transport);
    const dialer = await dialConnection(transport, listener.address, { token: TOKEN });
    await sleep(5);
    await listener.close();
    expect(await accepted[0]!.closed).toBeUndefined();
    const reason = await dialer.closed;
    expect(reason?.code).toBe(DinferErrorCode.TRANSPORT_CLOSED);
    expect(reason?.details.remoteCode).toBe(DinferErrorCode.NOT_READY);
  });

  it('refuses bad options with INVALID_ARGUMENT', async () => {
    const transport = memoryTransport();
    await expect(
      listenForConnections(transport, 'memory:0', { onConnection: undefined as never }),
    ).rejects.toMatchObject({ code: DinferErrorCode.INVALID_ARGUMENT });
    await expect(
      listenForConnections({} as Transport, 'memory:0', { onConnection: () => {} }),
    ).rejects.toMatchObject({ code: DinferErrorCode.INVALID_ARGUMENT });
    await expect(dialConnection(transport, 'memory:x', { token: '' })).rejects.toMatchObject({
      code: DinferErrorCode.INVALID_ARGUMENT,
    });
    await expect(dialConnection(transport, 'memory:x', { requestTimeoutMs: 0 })).rejects.toMatchObject({
      code: DinferErrorCode.INVALID_ARGUMENT,
    });
  });
});
