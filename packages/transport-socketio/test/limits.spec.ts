import {
  type Connection,
  DinferErrorCode,
  dialConnection,
  type Listener,
  listenForConnections,
} from '@dinfer/core';
import { FRAME_MAGIC } from '@dinfer/core/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { SOCKETIO_PIECE_BYTES, socketIoTransport } from '../src/index.js';
import { eventually, frameBytes, RawPeer, recordingLogger } from './helpers.js';

const MAX = 256 * 1024;

/** A frame whose JSON header is `json`, built by hand (the encoder refuses non-object headers). */
function frameWithHeader(json: string): Buffer {
  const header = Buffer.from(json);
  const body = Buffer.alloc(9 + header.byteLength);
  body[0] = FRAME_MAGIC;
  body.writeUInt32BE(header.byteLength, 1);
  body.writeUInt32BE(0, 5);
  header.copy(body, 9);
  const prefix = Buffer.alloc(4);
  prefix.writeUInt32BE(body.byteLength, 0);
  return Buffer.concat([prefix, body]);
}

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
    const listener = await listenForConnections(transport, '127.0.0.1:0', {
      logger,
      onConnection: (c) => {
        accepted.push(c);
        c.onRequest(async (request) => ({ header: { type: 'echo' }, attachments: request.attachments }));
        c.onMessage(() => {});
      },
    });
    cleanups.push(() => listener.close());
    const healthy = await dialConnection(transport, listener.address);
    cleanups.push(() => healthy.close());
    return { listener, logger, healthy, accepted };
  }

  async function stillServes(healthy: Connection): Promise<void> {
    const reply = await healthy.request({ header: { type: 'ping' }, attachments: [new Uint8Array(MAX / 2)] });
    expect(reply.attachments[0]?.byteLength).toBe(MAX / 2);
  }

  it('drops a peer sending one WebSocket message above a piece, keeps serving the others', async () => {
    const { listener, healthy } = await setup();
    const peer = await RawPeer.connect(listener.address);
    const gone = peer.disconnected();
    peer.socket.emit('dinfer:frame', Buffer.alloc(SOCKETIO_PIECE_BYTES + 64 * 1024));
    expect(await gone).toBe('transport close');
    await stillServes(healthy);
  });

  it('drops a peer whose attachments add up above maxFrameBytes, with a typed error logged', async () => {
    const { listener, logger, healthy, accepted } = await setup();
    const peer = await RawPeer.connect(listener.address);
    await eventually(() => accepted.length === 2);
    const victim = accepted[1] as Connection;
    const gone = peer.disconnected();
    peer.send({ type: 'rpc', kind: 'message', body: { type: 'split' } }, [
      Buffer.alloc(MAX / 2 + 10),
      Buffer.alloc(MAX / 2 + 10),
    ]);
    expect(await gone).toBe('io server disconnect');
    const error = await victim.closed;
    expect(error?.code).toBe(DinferErrorCode.FRAME_TOO_LARGE);
    expect(
      logger.entries.some((e) => e.level === 'warn' && e.context.code === DinferErrorCode.FRAME_TOO_LARGE),
    ).toBe(true);
    await stillServes(healthy);
  });

  it.each([
    ['a header that is not an object', ['dinfer:frame', frameWithHeader('"nope"')]],
    ['a header without type', ['dinfer:frame', frameWithHeader('{"kind":1}')]],
    ['a piece sent as a JSON number array', ['dinfer:frame', [1, 2, 3]]],
    ['an event with a binary and a text part', ['dinfer:frame', Buffer.alloc(4), 'extra']],
    [
      'a forbidden header key',
      [
        'dinfer:frame',
        frameWithHeader('{"type":"rpc","kind":"message","body":{"type":"t","__proto__":{"a":1}}}'),
      ],
    ],
    ['a request without a body', ['dinfer:frame', frameBytes({ type: 'rpc', kind: 'request', id: 1 })]],
    [
      'a request with a bad id',
      ['dinfer:frame', frameBytes({ type: 'rpc', kind: 'request', id: -1, body: { type: 't' } })],
    ],
    [
      'bytes that are not a frame',
      ['dinfer:frame', Buffer.from([0, 0, 0, 12, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9])],
    ],
    ['an unknown event', ['dinfer:whatever', 1]],
  ])('drops a peer sending %s (PROTOCOL), keeps serving the others', async (_name, args) => {
    const { listener, logger, healthy, accepted } = await setup();
    const peer = await RawPeer.connect(listener.address);
    await eventually(() => accepted.length === 2);
    const gone = peer.disconnected();
    const [event, ...rest] = args as [string, ...unknown[]];
    peer.socket.emit(event, ...rest);
    expect(await gone).toBe('io server disconnect');
    expect((await (accepted[1] as Connection).closed)?.code).toBe(DinferErrorCode.PROTOCOL);
    expect(
      logger.entries.some((e) => e.level === 'warn' && e.context.code === DinferErrorCode.PROTOCOL),
    ).toBe(true);
    await stillServes(healthy);
  });

  it('drops a peer sending an event with more than one binary part at the socket.io layer', async () => {
    const { listener, healthy, accepted } = await setup();
    const peer = await RawPeer.connect(listener.address);
    await eventually(() => accepted.length === 2);
    const gone = peer.disconnected();
    peer.socket.emit('dinfer:frame', Buffer.alloc(4), Buffer.alloc(4));
    expect(await gone).toBe('transport close');
    expect((await (accepted[1] as Connection).closed)?.code).toBe(DinferErrorCode.TRANSPORT_CLOSED);
    await stillServes(healthy);
  });

  it('answers a well-formed raw request frame', async () => {
    const { listener } = await setup();
    const peer = await RawPeer.connect(listener.address);
    cleanups.push(async () => peer.close());
    peer.send({ type: 'rpc', kind: 'request', id: 1, body: { type: 'raw' } }, [Buffer.from([1, 2, 3])]);
    const reply = await peer.next();
    expect(reply.header).toMatchObject({ type: 'rpc', kind: 'response', id: 1, body: { type: 'echo' } });
    expect(Array.from(reply.attachments[0] as Uint8Array)).toEqual([1, 2, 3]);
  });
});
