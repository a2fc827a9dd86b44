import { createHash } from 'node:crypto';
import {
  type Connection,
  DinferError,
  DinferErrorCode,
  dialConnection,
  type Envelope,
  isDinferError,
  isTransport,
  type Listener,
  listenForConnections,
} from '@dinfer/core';
import { afterEach, describe, expect, it } from 'vitest';
import { socketIoTransport } from '../src/index.js';
import { eventually, pattern } from './helpers.js';

const sha = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

describe('socketIoTransport: requests and messages', () => {
  const cleanups: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  async function pair(
    options: Parameters<typeof socketIoTransport>[0] = {},
  ): Promise<{ client: Connection; server: Connection; listener: Listener }> {
    const transport = socketIoTransport(options);
    let accept!: (connection: Connection) => void;
    const accepted = new Promise<Connection>((resolve) => {
      accept = resolve;
    });
    const listener = await listenForConnections(transport, '127.0.0.1:0', {
      token: 'secret',
      onConnection: accept,
    });
    cleanups.push(() => listener.close());
    const client = await dialConnection(transport, listener.address, { token: 'secret' });
    cleanups.push(() => client.close());
    return { client, server: await accepted, listener };
  }

  it('is a branded Transport with declared capabilities', () => {
    const transport = socketIoTransport({ maxFrameBytes: 1234 });
    expect(isTransport(transport)).toBe(true);
    expect(transport.name).toBe('socketio');
    expect(transport.capabilities).toEqual({ maxFrameBytes: 1234 });
    expect(socketIoTransport().capabilities).toEqual({ maxFrameBytes: 256 * 1024 * 1024 });
  });

  it('rejects bad options and addresses with INVALID_ARGUMENT', async () => {
    expect(() => socketIoTransport({ maxFrameBytes: -1 })).toThrow(DinferError);
    expect(() => socketIoTransport({ path: 'no-slash' })).toThrow(/path/);
    expect(() => socketIoTransport({ cors: ['' as string] })).toThrow(/cors/);
    await expect(dialConnection(socketIoTransport(), '127.0.0.1:1', { token: '' })).rejects.toThrow(/token/);
    const transport = socketIoTransport();
    await expect(transport.listen('nope', () => {})).rejects.toMatchObject({
      code: DinferErrorCode.INVALID_ARGUMENT,
    });
    await expect(transport.dial('host:99999')).rejects.toMatchObject({
      code: DinferErrorCode.INVALID_ARGUMENT,
    });
  });

  it('answers a request carrying a 16 MB attachment, bytes intact', async () => {
    const { client, server, listener } = await pair();
    expect(listener.address).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(listener.address.endsWith(':0')).toBe(false);
    server.onRequest(async (request) => ({
      header: { type: 'digest', sha: sha(request.attachments[0] as Uint8Array) },
      attachments: [request.attachments[0] as Uint8Array],
    }));
    const big = pattern(16 * 1024 * 1024, 7);
    const expected = sha(big);
    const reply = await client.request({ header: { type: 'echo' }, attachments: [big] });
    expect(reply.header).toEqual({ type: 'digest', sha: expected });
    expect(reply.attachments).toHaveLength(1);
    const echoed = reply.attachments[0] as Uint8Array;
    expect(echoed.constructor).toBe(Uint8Array);
    expect(echoed.byteLength).toBe(big.byteLength);
    expect(sha(echoed)).toBe(expected);
  });

  it('keeps 100 concurrent requests apart', async () => {
    const { client, server } = await pair();
    server.onRequest(async (request) => {
      const bytes = request.attachments[0] as Uint8Array;
      let sum = 0;
      for (const b of bytes) sum += b;
      // Finish out of order.
      await new Promise((resolve) => setTimeout(resolve, (request.header.n as number) % 7));
      return { header: { type: 'sum', n: request.header.n, sum }, attachments: [bytes.subarray(0, 8)] };
    });
    const inputs = Array.from({ length: 100 }, (_, n) => pattern(1000 + n, n + 1));
    const replies = await Promise.all(
      inputs.map((bytes, n) => client.request({ header: { type: 'sum', n }, attachments: [bytes] })),
    );
    replies.forEach((reply, n) => {
      const bytes = inputs[n] as Uint8Array;
      expect(reply.header).toEqual({ type: 'sum', n, sum: bytes.reduce((a, b) => a + b, 0) });
      expect(Array.from(reply.attachments[0] as Uint8Array)).toEqual(Array.from(bytes.subarray(0, 8)));
    });
  });

  it('carries more attachments than socket.io allows by default, empty ones included', async () => {
    const { client, server } = await pair();
    server.onRequest(async (request) => ({
      header: { type: 'back' },
      attachments: [...request.attachments].reverse(),
    }));
    const parts = Array.from({ length: 24 }, (_, i) => pattern(i * 3, i + 11));
    const reply = await client.request({ header: { type: 'many' }, attachments: parts });
    expect(reply.attachments.map((a) => sha(a))).toEqual([...parts].reverse().map((a) => sha(a)));
  });

  it('delivers one-way messages in order, both directions, including ones sent before the handler is set', async () => {
    const { client, server } = await pair();
    const atServer: Envelope[] = [];
    for (let i = 0; i < 50; i++)
      await client.send({ header: { type: 'seq', i }, attachments: [pattern(10, i + 1)] });
    await new Promise((resolve) => setTimeout(resolve, 50));
    server.onMessage((message) => atServer.push(message));
    await eventually(() => atServer.length === 50);
    expect(atServer.map((m) => m.header.i)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    expect(atServer.every((m, i) => sha(m.attachments[0] as Uint8Array) === sha(pattern(10, i + 1)))).toBe(
      true,
    );

    const atClient: Envelope[] = [];
    client.onMessage((message, connection) => {
      expect(connection).toBe(client);
      atClient.push(message);
    });
    await server.send({ header: { type: 'down' }, attachments: [] });
    await eventually(() => atClient.length === 1);
    expect(atClient[0]).toEqual({ header: { type: 'down' }, attachments: [] });
  });

  it('lets the listener side make requests too', async () => {
    const { client, server } = await pair();
    client.onRequest(async (request, context) => {
      expect(context.connection).toBe(client);
      return { header: { type: 'worker-reply', got: request.header.type }, attachments: [] };
    });
    const reply = await server.request({ header: { type: 'infer' }, attachments: [] });
    expect(reply.header).toEqual({ type: 'worker-reply', got: 'infer' });
  });

  it('turns a handler error into DINFER_ERR_REMOTE with the remote code', async () => {
    const { client, server } = await pair();
    server.onRequest(async () => {
      throw new DinferError(DinferErrorCode.TENSOR_INVALID, 'bad dtype');
    });
    const error = await client.request({ header: { type: 'x' }, attachments: [] }).catch((e: unknown) => e);
    expect(isDinferError(error, DinferErrorCode.REMOTE)).toBe(true);
    expect((error as DinferError).details.remoteCode).toBe(DinferErrorCode.TENSOR_INVALID);
    expect((error as DinferError).message).toContain('bad dtype');
  });

  it('times out a request and aborts the handler signal', async () => {
    const { client, server } = await pair();
    let handlerSignal: AbortSignal | undefined;
    server.onRequest((_request, context) => {
      handlerSignal = context.signal;
      return new Promise(() => {});
    });
    const started = Date.now();
    await expect(
      client.request({ header: { type: 'slow' }, attachments: [] }, { timeoutMs: 100 }),
    ).rejects.toMatchObject({
      code: DinferErrorCode.TIMEOUT,
    });
    expect(Date.now() - started).toBeGreaterThanOrEqual(95);
    await eventually(() => handlerSignal?.aborted === true);
  });

  it('aborts a request through its AbortSignal and cancels the remote handler', async () => {
    const { client, server } = await pair();
    let handlerSignal: AbortSignal | undefined;
    server.onRequest((_request, context) => {
      handlerSignal = context.signal;
      return new Promise(() => {});
    });
    const controller = new AbortController();
    const pending = client.request(
      { header: { type: 'slow' }, attachments: [] },
      { signal: controller.signal },
    );
    await eventually(() => handlerSignal !== undefined);
    controller.abort();
    await expect(pending).rejects.toMatchObject({ code: DinferErrorCode.ABORTED });
    await eventually(() => handlerSignal?.aborted === true);
    const already = AbortSignal.abort();
    await expect(
      client.request({ header: { type: 'x' }, attachments: [] }, { signal: already }),
    ).rejects.toMatchObject({
      code: DinferErrorCode.ABORTED,
    });
    // Still usable.
    server.onRequest(async () => ({ header: { type: 'ok' }, attachments: [] }));
    expect((await client.request({ header: { type: 'x' }, attachments: [] })).header.type).toBe('ok');
  });

  it('refuses an oversize envelope locally with FRAME_TOO_LARGE and stays usable', async () => {
    const { client, server } = await pair({ maxFrameBytes: 64 * 1024 });
    server.onRequest(async (request) => ({ header: { type: 'ok' }, attachments: request.attachments }));
    await expect(
      client.request({ header: { type: 'big' }, attachments: [new Uint8Array(64 * 1024)] }),
    ).rejects.toMatchObject({ code: DinferErrorCode.FRAME_TOO_LARGE });
    await expect(
      client.send({ header: { type: 'big' }, attachments: [new Uint8Array(70_000)] }),
    ).rejects.toMatchObject({
      code: DinferErrorCode.FRAME_TOO_LARGE,
    });
    await expect(
      client.send({ header: { type: 'bad' }, attachments: [[1, 2] as never] }),
    ).rejects.toMatchObject({
      code: DinferErrorCode.INVALID_ARGUMENT,
    });
    const reply = await client.request({ header: { type: 'small' }, attachments: [new Uint8Array(1000)] });
    expect(reply.attachments[0]?.byteLength).toBe(1000);
    expect(client.isOpen).toBe(true);
  });

  it('close fails pending requests on both sides with TRANSPORT_CLOSED and resolves closed', async () => {
    const { client, server } = await pair();
    let handlerSignal: AbortSignal | undefined;
    server.onRequest((_request, context) => {
      handlerSignal = context.signal;
      return new Promise(() => {});
    });
    const pending = client.request({ header: { type: 'hang' }, attachments: [] });
    await eventually(() => handlerSignal !== undefined);
    const serverPending = server.request({ header: { type: 'hang' }, attachments: [] });
    await client.close();
    await expect(pending).rejects.toMatchObject({ code: DinferErrorCode.TRANSPORT_CLOSED });
    await expect(serverPending).rejects.toMatchObject({ code: DinferErrorCode.TRANSPORT_CLOSED });
    expect(await client.closed).toBeUndefined();
    expect(await server.closed).toBeUndefined();
    expect(client.isOpen).toBe(false);
    expect(server.isOpen).toBe(false);
    expect(handlerSignal?.aborted).toBe(true);
    await expect(client.send({ header: { type: 'late' }, attachments: [] })).rejects.toMatchObject({
      code: DinferErrorCode.TRANSPORT_CLOSED,
    });
    await client.close(); // idempotent
  });

  it('passes a close reason to the peer', async () => {
    const { client, server } = await pair();
    await server.close(new DinferError(DinferErrorCode.OVERLOADED, 'shedding load'));
    const error = await client.closed;
    expect(isDinferError(error, DinferErrorCode.TRANSPORT_CLOSED)).toBe(true);
    expect(error?.details.remoteCode).toBe(DinferErrorCode.OVERLOADED);
    expect(error?.message).toContain('shedding load');
  });

  it('listener.close() closes accepted connections', async () => {
    const { server, listener } = await pair();
    await listener.close();
    expect(await server.closed).toBeUndefined();
    expect(server.isOpen).toBe(false);
  });
});
