/**
 * Clients that hold the master's connections: bodies sent one byte at a time (slow loris),
 * headers that never end, idle keep-alive sockets, more connections than the cap, and one
 * client sending more inference requests than its rate. Every load here is bounded in count
 * and time.
 */
import { connect, type Socket } from 'node:net';
import type { InferenceService, ServedModel } from '@dinfer/core';
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { createHttpApi, type HttpApiOptions } from '../src/http/api.js';

const MODEL: ServedModel = {
  name: 'echo',
  version: '1',
  inputs: [{ name: 'x', shape: [null, 2], dtype: 'float32' }],
  outputs: [{ name: 'y', shape: [null, 2], dtype: 'float32' }],
};

const echo: InferenceService = {
  models: () => [MODEL],
  health: () => ({ live: true, ready: true, degraded: false }),
  infer: async (model, inputs) => ({
    model,
    version: '1',
    outputs: [{ ...inputs[0]!, name: 'y' }],
    nodes: [],
    degraded: false,
    processingTimeMs: 0,
  }),
};

const apps: FastifyInstance[] = [];
const sockets: Socket[] = [];
afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  await Promise.all(apps.splice(0).map((app) => app.close()));
});

async function serve(options: HttpApiOptions): Promise<{ port: number; url: string }> {
  const app = createHttpApi(echo, options);
  apps.push(app);
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return { port: address.port, url: `http://127.0.0.1:${address.port}` };
}

/** A raw socket; resolves once connected. Records when it is closed and what it received. */
async function open(
  port: number,
): Promise<{ socket: Socket; closedAt: Promise<number>; received: () => string }> {
  const socket = connect({ host: '127.0.0.1', port });
  sockets.push(socket);
  let text = '';
  socket.on('data', (chunk: Buffer) => {
    text += chunk.toString('latin1');
  });
  socket.on('error', () => {});
  const closedAt = new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now())));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return { socket, closedAt, received: () => text };
}

/** Writes `text` one byte every `everyMs` until the socket closes or `maxMs` passes. */
function trickle(socket: Socket, text: string, everyMs: number, maxMs: number): void {
  let i = 0;
  const started = Date.now();
  const timer = setInterval(() => {
    if (socket.destroyed || i >= text.length || Date.now() - started > maxMs) {
      clearInterval(timer);
      return;
    }
    socket.write(text[i++]!);
  }, everyMs);
  timer.unref();
}

const within = (promise: Promise<number>, ms: number) =>
  Promise.race([promise, new Promise<number>((resolve) => setTimeout(() => resolve(Number.NaN), ms))]);

describe('slow clients', () => {
  it('cuts off bodies that arrive one byte at a time after the body timeout', async () => {
    const { port } = await serve({ bodyTimeoutMs: 1000 });
    const body = JSON.stringify({ inputs: [{ name: 'x', shape: [1, 2], datatype: 'FP32', data: [1, 2] }] });
    const clients = await Promise.all(Array.from({ length: 20 }, () => open(port)));
    const started = Date.now();
    for (const { socket } of clients) {
      socket.write(
        `POST /v2/models/echo/infer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n` +
          `Content-Length: ${body.length}\r\n\r\n`,
      );
      trickle(socket, body, 250, 6000);
    }
    const closed = await Promise.all(clients.map((c) => within(c.closedAt, 6000)));
    for (const [i, at] of closed.entries()) {
      expect(at - started, `client ${i} still open after 6 s`).toBeLessThan(4000);
      expect(clients[i]!.received()).toMatch(/^HTTP\/1\.1 408/);
    }
  });

  it('cuts off headers that never end', async () => {
    const { port } = await serve({ bodyTimeoutMs: 1000 });
    const client = await open(port);
    const started = Date.now();
    trickle(
      client.socket,
      `GET /v2/health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ${'a'.repeat(100)}`,
      200,
      6000,
    );
    const at = await within(client.closedAt, 6000);
    expect(at - started).toBeLessThan(4000);
  });

  it('closes idle keep-alive connections after the idle timeout', async () => {
    const { port } = await serve({ idleTimeoutMs: 300 });
    const client = await open(port);
    client.socket.write('GET /v2/health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    const answeredAt = Date.now();
    const at = await within(client.closedAt, 5000);
    expect(client.received()).toMatch(/^HTTP\/1\.1 200/);
    expect(at - answeredAt).toBeLessThan(3000);
  });

  it('accepts no more than maxConnections at once', async () => {
    const { port, url } = await serve({ maxConnections: 5 });
    const held = await Promise.all(Array.from({ length: 5 }, () => open(port)));
    const extra = await Promise.all(Array.from({ length: 3 }, () => open(port)));
    for (const client of extra) expect(Number.isNaN(await within(client.closedAt, 3000))).toBe(false);
    for (const client of held) expect(client.socket.destroyed).toBe(false);
    for (const client of held) client.socket.destroy();
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect((await fetch(`${url}/v2/health/live`, { signal: AbortSignal.timeout(5000) })).status).toBe(200);
  });
});

describe('the inference rate limit', () => {
  it('answers 429 with Retry-After past the rate, and not on health or status routes', async () => {
    const { url } = await serve({ rateLimit: 5, rateLimitWindowMs: 60_000 });
    const payload = JSON.stringify({
      inputs: [{ name: 'x', shape: [1, 2], datatype: 'FP32', data: [1, 2] }],
    });
    const statuses: number[] = [];
    for (let i = 0; i < 8; i++) {
      const res = await fetch(`${url}/v2/models/echo/infer`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: payload,
        signal: AbortSignal.timeout(5000),
      });
      statuses.push(res.status);
      if (res.status === 429) {
        expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
        expect(((await res.json()) as { code: string }).code).toBe('DINFER_ERR_RATE_LIMITED');
      } else await res.arrayBuffer();
    }
    expect(statuses).toEqual([200, 200, 200, 200, 200, 429, 429, 429]);
    const simple = await fetch(`${url}/api/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ input: [1, 2] }),
      signal: AbortSignal.timeout(5000),
    });
    expect(simple.status).toBe(429);
    for (const route of ['/v2/health/ready', '/api/status', '/v2/models/echo']) {
      expect((await fetch(`${url}${route}`, { signal: AbortSignal.timeout(5000) })).status, route).toBe(200);
    }
  });
});
