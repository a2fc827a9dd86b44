import { describe, expect, it } from 'vitest';
import { authenticateDialerSide, authenticateListenerSide } from '../src/connection/authenticate.js';
import { createChannelConnection } from '../src/connection/channel-connection.js';
import type { Connection } from '../src/connection/connection.js';
import type { FrameChannel } from '../src/connection/frame-channel.js';
import { DinferError, DinferErrorCode, isDinferError } from '../src/errors.js';
import { PROTOCOL_VERSION } from '../src/protocol/version.js';
import { memoryChannelPair } from '../src/testing/memory-channel.js';
import type { Envelope, MessageHeader } from '../src/transport.js';

function env(header: MessageHeader, ...attachments: Uint8Array[]): Envelope {
  return { header, attachments };
}

function connected(
  options: { timeoutMs?: number; maxFrameBytes?: number } = {},
): [Connection, Connection, FrameChannel, FrameChannel] {
  const [a, b] = memoryChannelPair(
    options.maxFrameBytes === undefined ? {} : { maxFrameBytes: options.maxFrameBytes },
  );
  const timeout = options.timeoutMs === undefined ? {} : { defaultTimeoutMs: options.timeoutMs };
  return [createChannelConnection(a, timeout), createChannelConnection(b, timeout), a, b];
}

async function rejectsWith(promise: Promise<unknown>, code: DinferErrorCode): Promise<DinferError> {
  try {
    await promise;
  } catch (error) {
    expect(isDinferError(error), String(error)).toBe(true);
    expect((error as DinferError).code).toBe(code);
    return error as DinferError;
  }
  throw new Error(`expected a rejection with ${code}`);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('createChannelConnection', () => {
  it('matches 200 concurrent replies to their requests when the handler answers out of order', async () => {
    const [a, b] = connected();
    b.onRequest(async (request) => {
      const n = request.header.n as number;
      await sleep((n * 7) % 13);
      return env({ type: 'reply', n: n * 2 }, new Uint8Array([n % 256, (n >> 8) % 256]));
    });
    const replies = await Promise.all(
      Array.from({ length: 200 }, (_, n) => a.request(env({ type: 'ask', n }, new Uint8Array(n)))),
    );
    replies.forEach((reply, n) => {
      expect(reply.header).toEqual({ type: 'reply', n: n * 2 });
      expect([...reply.attachments[0]!]).toEqual([n % 256, (n >> 8) % 256]);
    });
    await a.close();
  });

  it('works in both directions on the same connection', async () => {
    const [a, b] = connected();
    a.onRequest(async (r) => env({ type: 'from-a', got: r.header.type }));
    b.onRequest(async (r) => env({ type: 'from-b', got: r.header.type }));
    const [x, y] = await Promise.all([a.request(env({ type: 'p' })), b.request(env({ type: 'q' }))]);
    expect(x.header).toEqual({ type: 'from-b', got: 'p' });
    expect(y.header).toEqual({ type: 'from-a', got: 'q' });
    await b.close();
  });

  it('delivers one-way messages in order, including those sent before the handler is installed', async () => {
    const [a, b] = connected();
    const sent = Array.from({ length: 500 }, (_, i) => a.send(env({ type: 'm', i })));
    await Promise.all(sent);
    await sleep(5);
    const got: number[] = [];
    const done = new Promise<void>((resolve) => {
      b.onMessage((m, connection) => {
        expect(connection).toBe(b);
        got.push(m.header.i as number);
        if (got.length === 500) resolve();
      });
    });
    await done;
    expect(got).toEqual(Array.from({ length: 500 }, (_, i) => i));
    await a.close();
  });

  it('answers requests that arrive before onRequest once it is installed', async () => {
    const [a, b] = connected();
    const pending = a.request(env({ type: 'early' }));
    await sleep(5);
    b.onRequest(async () => env({ type: 'late-handler' }));
    expect((await pending).header.type).toBe('late-handler');
    await a.close();
  });

  it('turns a throwing handler into DINFER_ERR_REMOTE carrying the remote code and message', async () => {
    const [a, b] = connected();
    b.onRequest(async (r) => {
      if (r.header.type === 'typed') throw new DinferError(DinferErrorCode.UNKNOWN_MODEL, 'no model x');
      throw new Error('plain failure');
    });
    const typed = await rejectsWith(a.request(env({ type: 'typed' })), DinferErrorCode.REMOTE);
    expect(typed.details.remoteCode).toBe(DinferErrorCode.UNKNOWN_MODEL);
    expect(typed.details.remoteMessage).toBe('no model x');
    const plain = await rejectsWith(a.request(env({ type: 'plain' })), DinferErrorCode.REMOTE);
    expect(plain.details.remoteCode).toBe(DinferErrorCode.INTERNAL);
    expect(plain.details.remoteMessage).toBe('plain failure');
    expect(a.isOpen).toBe(true);
    await a.close();
  });

  it('times out with DINFER_ERR_TIMEOUT and aborts the handler signal on the peer', async () => {
    const [a, b] = connected();
    const handlerAborted = new Promise<unknown>((resolve) => {
      b.onRequest((_r, context) => {
        context.signal.addEventListener('abort', () => resolve(context.signal.reason));
        return new Promise<Envelope>(() => {});
      });
    });
    const started = performance.now();
    await rejectsWith(a.request(env({ type: 'slow' }), { timeoutMs: 50 }), DinferErrorCode.TIMEOUT);
    expect(performance.now() - started).toBeGreaterThanOrEqual(45);
    const reason = await handlerAborted;
    expect(isDinferError(reason, DinferErrorCode.ABORTED)).toBe(true);
    await a.close();
  });

  it('uses the connection default timeout', async () => {
    const [a, b] = connected({ timeoutMs: 30 });
    b.onRequest(() => new Promise<Envelope>(() => {}));
    await rejectsWith(a.request(env({ type: 'slow' })), DinferErrorCode.TIMEOUT);
    await a.close();
  });

  it('aborts with DINFER_ERR_ABORTED (before and during the request) and cancels the remote handler', async () => {
    const [a, b] = connected();
    const handlerAborted = new Promise<void>((resolve) => {
      b.onRequest((_r, context) => {
        context.signal.addEventListener('abort', () => resolve());
        return new Promise<Envelope>(() => {});
      });
    });
    const controller = new AbortController();
    const pending = a.request(env({ type: 'x' }), { signal: controller.signal });
    await sleep(5);
    controller.abort(new Error('user gave up'));
    const error = await rejectsWith(pending, DinferErrorCode.ABORTED);
    expect((error.cause as Error).message).toBe('user gave up');
    await handlerAborted;
    await rejectsWith(a.request(env({ type: 'y' }), { signal: controller.signal }), DinferErrorCode.ABORTED);
    await rejectsWith(a.send(env({ type: 'y' }), { signal: controller.signal }), DinferErrorCode.ABORTED);
    await a.close();
  });

  it.each(['requester', 'responder'] as const)(
    'fails every pending request with TRANSPORT_CLOSED when the %s closes',
    async (closer) => {
      const [a, b] = connected();
      let started = 0;
      const aborted: unknown[] = [];
      b.onRequest((_r, context) => {
        started += 1;
        context.signal.addEventListener('abort', () => aborted.push(context.signal.reason));
        return new Promise<Envelope>(() => {});
      });
      const pending = Array.from({ length: 10 }, () =>
        a.request(env({ type: 'hang' }), { timeoutMs: 60_000 }),
      );
      while (started < 10) await sleep(1);
      await (closer === 'requester' ? a : b).close();
      for (const p of pending) await rejectsWith(p, DinferErrorCode.TRANSPORT_CLOSED);
      expect(await a.closed).toBeUndefined();
      expect(await b.closed).toBeUndefined();
      expect(a.isOpen).toBe(false);
      expect(b.isOpen).toBe(false);
      expect(aborted).toHaveLength(10);
      await rejectsWith(a.request(env({ type: 'after' })), DinferErrorCode.TRANSPORT_CLOSED);
      await rejectsWith(a.send(env({ type: 'after' })), DinferErrorCode.TRANSPORT_CLOSED);
      await a.close();
    },
  );

  it('tells the peer why it closed', async () => {
    const [a, b] = connected();
    await a.close(new DinferError(DinferErrorCode.OVERLOADED, 'shedding load'));
    expect((await a.closed)?.code).toBe(DinferErrorCode.OVERLOADED);
    const peer = await b.closed;
    expect(peer?.code).toBe(DinferErrorCode.TRANSPORT_CLOSED);
    expect(peer?.details.remoteCode).toBe(DinferErrorCode.OVERLOADED);
  });

  it.each([
    ['an unknown kind', { type: 'rpc', kind: 'bogus', id: 1 }],
    ['a missing id', { type: 'rpc', kind: 'request', body: { type: 'x' } }],
    ['a negative id', { type: 'rpc', kind: 'cancel', id: -1 }],
    ['an extra field', { type: 'rpc', kind: 'cancel', id: 1, more: true }],
    ['a body without type', { type: 'rpc', kind: 'message', body: {} }],
    [
      'a __proto__ key',
      JSON.parse('{"type":"rpc","kind":"message","body":{"type":"x","__proto__":{"polluted":1}}}'),
    ],
    ['a non-rpc type after the handshake', { type: 'hello', protocol: 1, nonce: 'x' }],
  ])('closes the connection with DINFER_ERR_PROTOCOL on %s', async (_name, header) => {
    const [a, b] = connected();
    const [raw, other] = memoryChannelPair();
    const victim = createChannelConnection(other);
    const pending = victim.request(env({ type: 'never-answered' }));
    await raw.send(env(header as MessageHeader));
    expect((await victim.closed)?.code).toBe(DinferErrorCode.PROTOCOL);
    await rejectsWith(pending, DinferErrorCode.TRANSPORT_CLOSED);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    await a.close();
    await b.closed;
  });

  it('rejects an oversize request with FRAME_TOO_LARGE and keeps the connection working', async () => {
    const [a, b] = connected({ maxFrameBytes: 4096 });
    b.onRequest(async (r) => env({ type: 'ok', size: r.attachments[0]?.byteLength ?? 0 }));
    await rejectsWith(a.request(env({ type: 'big' }, new Uint8Array(8192))), DinferErrorCode.FRAME_TOO_LARGE);
    await rejectsWith(a.send(env({ type: 'big' }, new Uint8Array(8192))), DinferErrorCode.FRAME_TOO_LARGE);
    expect((await a.request(env({ type: 'small' }, new Uint8Array(100)))).header).toEqual({
      type: 'ok',
      size: 100,
    });
    await a.close();
  });

  it('answers FRAME_TOO_LARGE when the reply does not fit a frame', async () => {
    const [a, b] = connected({ maxFrameBytes: 4096 });
    b.onRequest(async () => env({ type: 'huge' }, new Uint8Array(8192)));
    const error = await rejectsWith(a.request(env({ type: 'q' })), DinferErrorCode.REMOTE);
    expect(error.details.remoteCode).toBe(DinferErrorCode.FRAME_TOO_LARGE);
    await a.close();
  });

  it('rejects invalid arguments with DINFER_ERR_INVALID_ARGUMENT', async () => {
    const [a] = connected();
    await rejectsWith(a.request(env({ type: 'x' }), { timeoutMs: 0 }), DinferErrorCode.INVALID_ARGUMENT);
    await rejectsWith(
      a.request({ header: {} as MessageHeader, attachments: [] }),
      DinferErrorCode.INVALID_ARGUMENT,
    );
    await rejectsWith(
      a.send({ header: { type: 'x' }, attachments: [[1, 2] as unknown as Uint8Array] }),
      DinferErrorCode.INVALID_ARGUMENT,
    );
    expect(() => createChannelConnection(memoryChannelPair()[0], { defaultTimeoutMs: -1 })).toThrow(
      DinferError,
    );
    await a.close();
  });
});

describe('authenticateListenerSide / authenticateDialerSide', () => {
  async function handshake(listenerToken: string | undefined, dialerToken: string | undefined) {
    const [l, d] = memoryChannelPair();
    const listener = authenticateListenerSide(l, listenerToken, { timeoutMs: 2000 });
    const dialer = authenticateDialerSide(d, dialerToken, { timeoutMs: 2000 });
    const [ls, ds] = await Promise.allSettled([listener, dialer]);
    return { ls, ds, l, d };
  }

  it('authenticates with the same token and hands over a working channel without losing early envelopes', async () => {
    const [l, d] = memoryChannelPair();
    const [lc, dc] = await Promise.all([
      authenticateListenerSide(l, 'secret').then((channel) => {
        const connection = createChannelConnection(channel);
        // Sent immediately: it may reach the dialer before its connection exists.
        void connection.send(env({ type: 'first' }));
        return connection;
      }),
      authenticateDialerSide(d, 'secret'),
    ]);
    await sleep(5);
    const dialer = createChannelConnection(dc);
    const first = await new Promise<Envelope>((resolve) => dialer.onMessage(resolve));
    expect(first.header.type).toBe('first');
    lc.onRequest(async () => env({ type: 'pong' }));
    expect((await dialer.request(env({ type: 'ping' }))).header.type).toBe('pong');
    await dialer.close();
  });

  it('accepts anyone when neither side has a token', async () => {
    const { ls, ds } = await handshake(undefined, undefined);
    expect(ls.status).toBe('fulfilled');
    expect(ds.status).toBe('fulfilled');
  });

  it.each([
    ['a wrong token', 'secret', 'guess'],
    ['a missing dialer token', 'secret', undefined],
    ['a listener without the token', undefined, 'secret'],
  ])('fails both sides with AUTH_FAILED on %s', async (_n, listenerToken, dialerToken) => {
    const { ls, ds } = await handshake(listenerToken, dialerToken);
    expect(ds.status).toBe('rejected');
    expect((ds as PromiseRejectedResult).reason.code).toBe(DinferErrorCode.AUTH_FAILED);
    if (listenerToken !== undefined) {
      expect(ls.status).toBe('rejected');
      expect((ls as PromiseRejectedResult).reason.code).toBe(DinferErrorCode.AUTH_FAILED);
    }
  });

  it('rejects a dialer speaking another protocol version with PROTOCOL_VERSION', async () => {
    const [l, d] = memoryChannelPair();
    const listener = authenticateListenerSide(l, 'secret');
    const closed = new Promise<DinferError | undefined>((resolve) => d.onClose(resolve));
    const hello = await new Promise<Envelope>((resolve) => d.onEnvelope(resolve));
    expect(hello.header.type).toBe('hello');
    const replies: Envelope[] = [];
    d.onEnvelope((e) => replies.push(e));
    await d.send(env({ type: 'auth', protocol: PROTOCOL_VERSION + 1, nonce: 'abc', proof: 'x' }));
    await rejectsWith(listener, DinferErrorCode.PROTOCOL_VERSION);
    await closed;
    expect(replies.map((r) => r.header.type)).toEqual(['reject']);
  });

  it('rejects anything but auth before the handshake completes', async () => {
    const [l, d] = memoryChannelPair();
    const listener = authenticateListenerSide(l, 'secret');
    d.onEnvelope(() => {});
    await d.send(env({ type: 'rpc', kind: 'request', id: 1, body: { type: 'infer' } }));
    await rejectsWith(listener, DinferErrorCode.AUTH_FAILED);
  });

  it('times out a silent peer on both sides and closes the channel', async () => {
    const [l, d] = memoryChannelPair();
    d.onEnvelope(() => {});
    const closed = new Promise<DinferError | undefined>((resolve) => l.onClose(resolve));
    await rejectsWith(authenticateListenerSide(l, 'secret', { timeoutMs: 30 }), DinferErrorCode.TIMEOUT);
    expect((await closed)?.code).toBe(DinferErrorCode.TIMEOUT);
    const [, d2] = memoryChannelPair();
    await rejectsWith(authenticateDialerSide(d2, 'secret', { timeoutMs: 30 }), DinferErrorCode.TIMEOUT);
  });

  it('fails with TRANSPORT_CLOSED when the link closes mid-handshake, and honours an abort signal', async () => {
    const [l, d] = memoryChannelPair();
    const dialer = authenticateDialerSide(d, 'secret');
    l.close();
    await rejectsWith(dialer, DinferErrorCode.TRANSPORT_CLOSED);
    const [, d2] = memoryChannelPair();
    const controller = new AbortController();
    const aborted = authenticateDialerSide(d2, 'secret', { signal: controller.signal });
    controller.abort();
    await rejectsWith(aborted, DinferErrorCode.ABORTED);
  });
});
