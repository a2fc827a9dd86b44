import { connect, createServer, type Socket } from 'node:net';
import { type DinferError, DinferErrorCode, type Envelope, isDinferError } from '@dinfer/core';
import { afterEach, describe, expect, it } from 'vitest';
import { type SocketChannel, socketChannel } from '../src/index.js';
import { waitFor } from './helpers.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** Two connected sockets on loopback, each wrapped in a channel. */
async function pair(maxFrameBytes = 1 << 20): Promise<{ a: SocketChannel; b: SocketChannel }> {
  let accepted: Socket | undefined;
  const server = createServer((socket) => {
    accepted = socket;
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const socket = connect({ host: '127.0.0.1', port: (server.address() as { port: number }).port });
  await new Promise((resolve) => socket.once('connect', resolve));
  await waitFor(() => accepted !== undefined);
  const a = socketChannel(socket, { maxFrameBytes, lingerMs: 200 });
  const b = socketChannel(accepted!, { maxFrameBytes, lingerMs: 200 });
  cleanups.push(() => {
    socket.destroy();
    accepted?.destroy();
    return new Promise((resolve) => server.close(resolve));
  });
  return { a, b };
}

const envelope = (i: number, bytes = 4): Envelope => ({
  header: { type: 'n', i },
  attachments: [new Uint8Array(bytes).fill(i & 255)],
});

describe('socketChannel', () => {
  it('queues envelopes until a handler is installed, then delivers them in order', async () => {
    const { a, b } = await pair();
    await Promise.all([0, 1, 2, 3, 4].map((i) => a.send(envelope(i))));
    await new Promise((resolve) => setTimeout(resolve, 30));
    const seen: number[] = [];
    b.onEnvelope((e) => seen.push(e.header.i as number));
    await a.send(envelope(5));
    await waitFor(() => seen.length === 6);
    expect(seen).toEqual([0, 1, 2, 3, 4, 5]);
    expect(b.remoteAddress).toMatch(/^127\.0\.0\.1:\d+$/);
  });

  it('delivers frames sent before a graceful close, then reports close on both sides', async () => {
    const { a, b } = await pair();
    const seen: number[] = [];
    let bClosed: DinferError | undefined | 'open' = 'open';
    b.onEnvelope((e) => seen.push(e.header.i as number));
    b.onClose((error) => {
      bClosed = error;
    });
    const sends = [0, 1, 2].map((i) => a.send(envelope(i, 200_000)));
    const reason: { error?: DinferError | undefined } = {};
    a.onClose((error) => {
      reason.error = error;
    });
    a.close();
    await Promise.all(sends);
    await waitFor(() => bClosed !== 'open');
    expect(seen).toEqual([0, 1, 2]);
    // The side that closed sees a clean close; the peer's link ended under it.
    expect(reason.error).toBeUndefined();
    expect(isDinferError(bClosed, DinferErrorCode.TRANSPORT_CLOSED)).toBe(true);
    await expect(a.send(envelope(9))).rejects.toMatchObject({ code: DinferErrorCode.TRANSPORT_CLOSED });
    // A handler added after the close still runs, once.
    const late = await new Promise<DinferError | undefined>((resolve) => a.onClose(resolve));
    expect(late).toBeUndefined();
  });

  it('rejects an oversize send and stays usable', async () => {
    const { a, b } = await pair(64 * 1024);
    const seen: number[] = [];
    b.onEnvelope((e) => seen.push(e.header.i as number));
    await expect(a.send(envelope(1, 100_000))).rejects.toMatchObject({
      code: DinferErrorCode.FRAME_TOO_LARGE,
    });
    await a.send(envelope(2));
    await waitFor(() => seen.length === 1);
    expect(seen).toEqual([2]);
  });

  it('closes only its own link when the consumer throws', async () => {
    const { a, b } = await pair();
    b.onEnvelope(() => {
      throw new Error('consumer bug');
    });
    const closed = new Promise<DinferError | undefined>((resolve) => b.onClose(resolve));
    await a.send(envelope(1));
    expect((await closed)?.code).toBe(DinferErrorCode.INTERNAL);
  });

  it('closes with FRAME_TOO_LARGE when the incoming limit is below the frame, and can be raised', async () => {
    const { a, b } = await pair();
    b.setMaxIncomingFrameBytes(1024);
    const seen: number[] = [];
    b.onEnvelope((e) => seen.push(e.header.i as number));
    await a.send(envelope(1, 500));
    await waitFor(() => seen.length === 1);
    b.setMaxIncomingFrameBytes(1 << 20);
    await a.send(envelope(2, 5000));
    await waitFor(() => seen.length === 2);
    b.setMaxIncomingFrameBytes(1024);
    const closed = new Promise<DinferError | undefined>((resolve) => b.onClose(resolve));
    await a.send(envelope(3, 5000));
    expect((await closed)?.code).toBe(DinferErrorCode.FRAME_TOO_LARGE);
  });
});
