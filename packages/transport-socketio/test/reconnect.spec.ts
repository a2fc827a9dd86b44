import { type Connection, DinferErrorCode, type Listener } from '@dinfer/core';
import { afterEach, describe, expect, it } from 'vitest';
import { socketIoTransport } from '../src/index.js';
import { eventually } from './helpers.js';

describe('socketIoTransport: reconnection', () => {
  const cleanups: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  it('redials after the listener restarts on the same port and authenticates again', async () => {
    const transport = socketIoTransport({ token: 't0k3n' });
    let generation = 0;
    const handlerSignals: AbortSignal[] = [];
    const onConnection = (connection: Connection): void => {
      const mine = generation;
      connection.onRequest((request, context) => {
        if (request.header.type === 'hang') {
          handlerSignals.push(context.signal);
          return new Promise(() => {});
        }
        return Promise.resolve({
          header: { type: 'pong', generation: mine },
          attachments: request.attachments,
        });
      });
    };
    let listener: Listener = await transport.listen('127.0.0.1:0', onConnection);
    const address = listener.address;
    const client = await transport.dial(address);
    cleanups.push(() => client.close());
    expect((await client.request({ header: { type: 'ping' }, attachments: [] })).header).toEqual({
      type: 'pong',
      generation: 0,
    });

    const hanging = client.request({ header: { type: 'hang' }, attachments: [] });
    await eventually(() => handlerSignals.length === 1);
    await listener.close();
    await expect(hanging).rejects.toMatchObject({ code: DinferErrorCode.TRANSPORT_CLOSED });
    expect(handlerSignals[0]?.aborted).toBe(true);
    expect(client.isOpen).toBe(true);

    generation = 1;
    listener = await transport.listen(address, onConnection);
    cleanups.push(() => listener.close());
    // Issued while the link is still down: waits for the re-authenticated link.
    const reply = await client.request(
      { header: { type: 'ping' }, attachments: [new Uint8Array([9])] },
      { timeoutMs: 10_000 },
    );
    expect(reply.header).toEqual({ type: 'pong', generation: 1 });
    expect(Array.from(reply.attachments[0] as Uint8Array)).toEqual([9]);
  });

  it('with reconnection off, a lost listener closes the dialed connection', async () => {
    const transport = socketIoTransport({ reconnection: false });
    expect(transport.capabilities.reconnects).toBe(false);
    const listener = await transport.listen('127.0.0.1:0', () => {});
    const client = await transport.dial(listener.address);
    await listener.close();
    const error = await client.closed;
    expect(error?.code).toBe(DinferErrorCode.TRANSPORT_CLOSED);
    expect(client.isOpen).toBe(false);
  });

  it('a dial to a closed port fails with TRANSPORT_CONNECT', async () => {
    const transport = socketIoTransport();
    const listener = await transport.listen('127.0.0.1:0', () => {});
    const address = listener.address;
    await listener.close();
    await expect(transport.dial(address)).rejects.toMatchObject({ code: DinferErrorCode.TRANSPORT_CONNECT });
  });
});
