import { type Connection, DinferErrorCode, type Listener } from '@dinfer/core';
import { afterEach, describe, expect, it } from 'vitest';
import { socketIoTransport } from '../src/index.js';
import { disconnected, eventually, rawClient, recordingLogger, sendRawGarbage } from './helpers.js';

const MAX = 256 * 1024;

describe('socketIoTransport: hostile input', () => {
  const cleanups: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  async function setup(): Promise<{
    listener: Listener;
    logger: ReturnType<typeof recordingLogger>;
    healthy: Connection;
    accepted: Connection[];
  }> {
    const logger = recordingLogger();
    const transport = socketIoTransport({ maxFrameBytes: MAX, logger });
    const accepted: Connection[] = [];
    const listener = await transport.listen('127.0.0.1:0', (c) => {
      accepted.push(c);
      c.onRequest(async (request) => ({ header: { type: 'echo' }, attachments: request.attachments }));
      c.onMessage(() => {});
    });
    cleanups.push(() => listener.close());
    const healthy = await transport.dial(listener.address);
    cleanups.push(() => healthy.close());
    return { listener, logger, healthy, accepted };
  }

  async function stillServes(healthy: Connection): Promise<void> {
    const reply = await healthy.request({ header: { type: 'ping' }, attachments: [new Uint8Array(MAX / 2)] });
    expect(reply.attachments[0]?.byteLength).toBe(MAX / 2);
  }

  it('drops a peer sending one attachment above maxFrameBytes, keeps serving the others', async () => {
    const { listener, healthy } = await setup();
    const reason = await sendRawGarbage(listener.address, 'oversize', MAX + 64 * 1024);
    expect(reason).toBe('transport close');
    await stillServes(healthy);
  });

  it('drops a peer whose attachments add up above maxFrameBytes, with a typed error logged', async () => {
    const { listener, logger, healthy, accepted } = await setup();
    const socket = await rawClient(listener.address);
    await eventually(() => accepted.length === 2);
    const victim = accepted[1] as Connection;
    const gone = disconnected(socket);
    socket.emit('dinfer:msg', { type: 'split' }, [Buffer.alloc(MAX / 2 + 10), Buffer.alloc(MAX / 2 + 10)]);
    expect(await gone).toBe('io server disconnect');
    const error = await victim.closed;
    expect(error?.code).toBe(DinferErrorCode.FRAME_TOO_LARGE);
    expect(
      logger.entries.some((e) => e.level === 'warn' && e.context.code === DinferErrorCode.FRAME_TOO_LARGE),
    ).toBe(true);
    await stillServes(healthy);
  });

  it.each([
    ['header not an object', ['dinfer:msg', 'nope', []]],
    ['header without type', ['dinfer:msg', { kind: 1 }, []]],
    ['attachments as a JSON number array', ['dinfer:msg', { type: 't' }, [1, 2, 3]]],
    ['a Buffer smuggled into the header', ['dinfer:msg', { type: 't', x: Buffer.alloc(4) }, []]],
    ['a forbidden header key', ['dinfer:msg', JSON.parse('{"type":"t","__proto__":{"a":1}}'), []]],
    ['a request without an ack', ['dinfer:req', 1, { type: 't' }, []]],
    ['a request with a bad id', ['dinfer:req', -1, { type: 't' }, [], () => {}]],
    ['an unknown event', ['dinfer:whatever', 1]],
  ])('drops a peer sending %s (PROTOCOL), keeps serving the others', async (_name, args) => {
    const { listener, logger, healthy, accepted } = await setup();
    const socket = await rawClient(listener.address);
    await eventually(() => accepted.length === 2);
    const gone = disconnected(socket);
    const [event, ...rest] = args as [string, ...unknown[]];
    socket.emit(event, ...rest);
    expect(await gone).toBe('io server disconnect');
    expect((await (accepted[1] as Connection).closed)?.code).toBe(DinferErrorCode.PROTOCOL);
    expect(
      logger.entries.some((e) => e.level === 'warn' && e.context.code === DinferErrorCode.PROTOCOL),
    ).toBe(true);
    await stillServes(healthy);
  });

  it('answers a well-formed raw request through the ack', async () => {
    const { listener } = await setup();
    const socket = await rawClient(listener.address);
    cleanups.push(async () => socket.disconnect());
    const reply = await new Promise<unknown>((resolve) =>
      socket.emit('dinfer:req', 1, { type: 'raw' }, [Buffer.from([1, 2, 3])], resolve),
    );
    expect(reply).toMatchObject({ header: { type: 'echo' } });
    const attachments = (reply as { attachments: Uint8Array[] }).attachments;
    expect(Array.from(attachments[0] as Uint8Array)).toEqual([1, 2, 3]);
  });
});
