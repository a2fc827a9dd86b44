import {
  type Connection,
  DinferErrorCode,
  dialConnection,
  type Envelope,
  FrameDecoder,
  type Listener,
  type ListenForConnectionsOptions,
  listenForConnections,
  PROTOCOL_VERSION,
} from '@dinfer/core';
import { Server } from 'socket.io';
import { io } from 'socket.io-client';
import { afterEach, describe, expect, it } from 'vitest';
import { socketIoTransport } from '../src/index.js';
import { frameBytes, next, RawPeer, recordingLogger } from './helpers.js';

describe('socketIoTransport: authentication', () => {
  const cleanups: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  async function listen(options: Partial<ListenForConnectionsOptions> = {}): Promise<{
    listener: Listener;
    accepted: Connection[];
  }> {
    const accepted: Connection[] = [];
    const listener = await listenForConnections(socketIoTransport(), '127.0.0.1:0', {
      ...options,
      onConnection: (c) => {
        accepted.push(c);
        c.onRequest(async () => ({ header: { type: 'pong' }, attachments: [] }));
      },
    });
    cleanups.push(() => listener.close());
    return { listener, accepted };
  }

  it('connects with the right token and refuses a wrong or missing one', async () => {
    const { listener, accepted } = await listen({ token: 'cluster-token' });
    const good = await dialConnection(socketIoTransport(), listener.address, { token: 'cluster-token' });
    cleanups.push(() => good.close());
    expect((await good.request({ header: { type: 'ping' }, attachments: [] })).header.type).toBe('pong');
    expect(accepted).toHaveLength(1);

    await expect(
      dialConnection(socketIoTransport(), listener.address, { token: 'wrong' }),
    ).rejects.toMatchObject({
      code: DinferErrorCode.AUTH_FAILED,
    });
    await expect(dialConnection(socketIoTransport(), listener.address)).rejects.toMatchObject({
      code: DinferErrorCode.AUTH_FAILED,
    });
    expect(accepted).toHaveLength(1);
  });

  it('authenticates the listener too: a dialer with a token refuses a listener without it', async () => {
    const { listener } = await listen();
    await expect(
      dialConnection(socketIoTransport(), listener.address, { token: 'cluster-token' }),
    ).rejects.toMatchObject({
      code: DinferErrorCode.AUTH_FAILED,
      message: expect.stringContaining('could not prove'),
    });
  });

  it('never puts the token on the wire', async () => {
    // A fake listener that records what the dialer sends.
    const server = new Server({ transports: ['websocket'] });
    const seen: unknown[] = [];
    const decoded: Envelope[] = [];
    const raw: Buffer[] = [];
    server.on('connection', (socket) => {
      seen.push(socket.handshake.auth);
      const decoder = new FrameDecoder();
      socket.onAny((_event, piece: Buffer) => {
        raw.push(piece);
        decoded.push(...decoder.push(new Uint8Array(piece)));
      });
      socket.emit('dinfer:frame', frameBytes({ type: 'hello', protocol: PROTOCOL_VERSION, nonce: 'abc' }));
    });
    server.listen(0);
    cleanups.push(() => server.close());
    await new Promise((resolve) => setTimeout(resolve, 20));
    const port = (server as unknown as { httpServer: { address(): { port: number } } }).httpServer.address()
      .port;
    const dial = dialConnection(socketIoTransport(), `127.0.0.1:${port}`, {
      token: 'very-secret-token',
      handshakeTimeoutMs: 300,
    });
    await expect(dial).rejects.toMatchObject({ code: DinferErrorCode.TIMEOUT });
    expect(seen[0]).toEqual({ protocol: PROTOCOL_VERSION });
    expect(decoded.map((e) => e.header.type)).toEqual(['auth']);
    expect(JSON.stringify(decoded[0]?.header)).toContain('"proof"');
    expect(JSON.stringify(decoded)).not.toContain('very-secret-token');
    expect(Buffer.concat(raw).toString('latin1')).not.toContain('very-secret-token');
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
    const peer = await RawPeer.connect(listener.address, { token: null });
    expect((await peer.next()).header.type).toBe('hello');
    const gone = peer.disconnected();
    peer.send({ type: 'rpc', kind: 'message', body: { type: 'sneaky' } });
    expect((await peer.next()).header).toMatchObject({
      type: 'reject',
      reason: expect.stringContaining('expected an auth message before anything else'),
    });
    await gone;
    expect(accepted).toHaveLength(0);
    expect(
      logger.entries.some((e) => e.level === 'warn' && e.context.code === DinferErrorCode.AUTH_FAILED),
    ).toBe(true);
    // The listener keeps serving.
    const ok = await dialConnection(socketIoTransport(), listener.address);
    cleanups.push(() => ok.close());
    expect((await ok.request({ header: { type: 'ping' }, attachments: [] })).header.type).toBe('pong');
  });

  it('drops a socket that never answers the challenge after handshakeTimeoutMs', async () => {
    const { listener } = await listen({ handshakeTimeoutMs: 150 });
    const peer = await RawPeer.connect(listener.address, { token: null });
    const started = Date.now();
    expect((await peer.next()).header.type).toBe('hello');
    const gone = peer.disconnected();
    expect((await peer.next()).header).toMatchObject({
      reason: expect.stringContaining(DinferErrorCode.TIMEOUT),
    });
    expect(Date.now() - started).toBeLessThan(2000);
    await gone;
  });

  it('admits browsers only from the origins in cors', async () => {
    const transport = socketIoTransport({ cors: ['https://app.example.org'] });
    const listener = await listenForConnections(transport, '127.0.0.1:0', { onConnection: () => {} });
    cleanups.push(() => listener.close());
    const connect = (origin: string | undefined) => {
      const socket = io(`http://${listener.address}`, {
        transports: ['websocket'],
        forceNew: true,
        reconnection: false,
        auth: { protocol: PROTOCOL_VERSION },
        ...(origin === undefined ? {} : { extraHeaders: { origin } }),
      });
      return new Promise<'connected' | 'refused'>((resolve) => {
        socket.once('connect', () => resolve('connected'));
        socket.once('connect_error', () => resolve('refused'));
      }).finally(() => socket.disconnect());
    };
    expect(await connect('https://app.example.org')).toBe('connected');
    expect(await connect('https://evil.example.org')).toBe('refused');
    expect(await connect(undefined)).toBe('connected');
    // Without cors, no browser origin is admitted.
    const closed = await listenForConnections(socketIoTransport(), '127.0.0.1:0', { onConnection: () => {} });
    cleanups.push(() => closed.close());
    const socket = io(`http://${closed.address}`, {
      transports: ['websocket'],
      forceNew: true,
      reconnection: false,
      auth: { protocol: PROTOCOL_VERSION },
      extraHeaders: { origin: 'https://app.example.org' },
    });
    expect((await next(socket, 'connect_error')).length).toBe(1);
    socket.disconnect();
  });
});
