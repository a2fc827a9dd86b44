import { type Connection, DinferErrorCode, type Listener, PROTOCOL_VERSION } from '@dinfer/core';
import { Server } from 'socket.io';
import { io } from 'socket.io-client';
import { afterEach, describe, expect, it } from 'vitest';
import { socketIoTransport } from '../src/index.js';
import { disconnected, next, rawClient, recordingLogger } from './helpers.js';

describe('socketIoTransport: authentication', () => {
  const cleanups: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  async function listen(options: Parameters<typeof socketIoTransport>[0] = {}): Promise<{
    listener: Listener;
    accepted: Connection[];
  }> {
    const accepted: Connection[] = [];
    const listener = await socketIoTransport(options).listen('127.0.0.1:0', (c) => {
      accepted.push(c);
      c.onRequest(async () => ({ header: { type: 'pong' }, attachments: [] }));
    });
    cleanups.push(() => listener.close());
    return { listener, accepted };
  }

  it('connects with the right token and refuses a wrong or missing one', async () => {
    const { listener, accepted } = await listen({ token: 'cluster-token' });
    const good = await socketIoTransport({ token: 'cluster-token' }).dial(listener.address);
    cleanups.push(() => good.close());
    expect((await good.request({ header: { type: 'ping' }, attachments: [] })).header.type).toBe('pong');
    expect(accepted).toHaveLength(1);

    await expect(socketIoTransport({ token: 'wrong' }).dial(listener.address)).rejects.toMatchObject({
      code: DinferErrorCode.AUTH_FAILED,
    });
    await expect(socketIoTransport().dial(listener.address)).rejects.toMatchObject({
      code: DinferErrorCode.AUTH_FAILED,
    });
    expect(accepted).toHaveLength(1);
  });

  it('authenticates the listener too: a dialer with a token refuses a listener without it', async () => {
    const { listener } = await listen();
    await expect(socketIoTransport({ token: 'cluster-token' }).dial(listener.address)).rejects.toMatchObject({
      code: DinferErrorCode.AUTH_FAILED,
      message: expect.stringContaining('could not prove'),
    });
  });

  it('never puts the token on the wire', async () => {
    // A fake listener that records what the dialer sends.
    const server = new Server({ transports: ['websocket'] });
    const seen: unknown[] = [];
    server.on('connection', (socket) => {
      seen.push(socket.handshake.auth);
      socket.onAny((_event, ...args) => seen.push(args));
      socket.emit('dinfer:hello', { type: 'hello', protocol: PROTOCOL_VERSION, nonce: 'abc' });
    });
    server.listen(0);
    cleanups.push(() => server.close());
    await new Promise((resolve) => setTimeout(resolve, 20));
    const port = (server as unknown as { httpServer: { address(): { port: number } } }).httpServer.address()
      .port;
    const dial = socketIoTransport({ token: 'very-secret-token', handshakeTimeoutMs: 300 }).dial(
      `127.0.0.1:${port}`,
    );
    await expect(dial).rejects.toMatchObject({ code: DinferErrorCode.TIMEOUT });
    expect(seen.length).toBeGreaterThanOrEqual(2);
    expect(seen[0]).toEqual({ protocol: PROTOCOL_VERSION });
    expect(JSON.stringify(seen)).not.toContain('very-secret-token');
    expect(JSON.stringify(seen[1])).toContain('"proof"');
  });

  it('refuses a protocol version mismatch in the socket.io middleware with a clear error', async () => {
    const { listener, accepted } = await listen();
    const socket = io(`http://${listener.address}`, {
      transports: ['websocket'],
      forceNew: true,
      reconnection: false,
      auth: { protocol: PROTOCOL_VERSION + 1 },
    });
    const error = (await next(socket, 'connect_error'))[0] as Error & { data?: { code: string } };
    socket.disconnect();
    expect(error.message).toContain(`this listener speaks ${PROTOCOL_VERSION}`);
    expect(error.data?.code).toBe(DinferErrorCode.PROTOCOL_VERSION);
    expect(accepted).toHaveLength(0);
  });

  it('disconnects a socket that sends anything before the handshake completes', async () => {
    const logger = recordingLogger();
    const { listener, accepted } = await listen({ logger });
    const socket = await rawClient(listener.address, { token: null });
    const rejected = next(socket, 'dinfer:reject');
    const gone = disconnected(socket);
    socket.emit('dinfer:msg', { type: 'sneaky' }, []);
    expect((await rejected)[0]).toMatchObject({
      type: 'reject',
      reason: expect.stringContaining('before the handshake'),
    });
    await gone;
    expect(accepted).toHaveLength(0);
    expect(
      logger.entries.some((e) => e.level === 'warn' && e.context.code === DinferErrorCode.AUTH_FAILED),
    ).toBe(true);
    // The listener keeps serving.
    const ok = await socketIoTransport().dial(listener.address);
    cleanups.push(() => ok.close());
    expect((await ok.request({ header: { type: 'ping' }, attachments: [] })).header.type).toBe('pong');
  });

  it('drops a socket that never answers the challenge after handshakeTimeoutMs', async () => {
    const { listener } = await listen({ handshakeTimeoutMs: 150 });
    const socket = await rawClient(listener.address, { token: null });
    const rejected = next(socket, 'dinfer:reject');
    const started = Date.now();
    expect((await rejected)[0]).toMatchObject({ reason: expect.stringContaining(DinferErrorCode.TIMEOUT) });
    expect(Date.now() - started).toBeLessThan(2000);
    await disconnected(socket);
  });
});
