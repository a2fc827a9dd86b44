import {
  type Connection,
  DinferErrorCode,
  dialConnection,
  type Listener,
  listenForConnections,
} from '@dinfer/core';
import { afterEach, describe, expect, it } from 'vitest';
import { socketIoTransport } from '../src/index.js';
import { eventually } from './helpers.js';

describe('socketIoTransport: reconnection', () => {
  const cleanups: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  it('redials after the listener restarts on the same port and authenticates again', async () => {
    const transport = socketIoTransport();
    const listen = (address: string) =>
      listenForConnections(transport, address, { token: 't0k3n', onConnection });
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
    let listener: Listener = await listen('127.0.0.1:0');
    const address = listener.address;
    const client = await dialConnection(transport, address, {
      token: 't0k3n',
      reconnect: { initialDelayMs: 50, maxDelayMs: 500 },
    });
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
    listener = await listen(address);
    cleanups.push(() => listener.close());
    // Issued while the link is still down: waits for the re-authenticated link.
    const reply = await client.request(
      { header: { type: 'ping' }, attachments: [new Uint8Array([9])] },
      { timeoutMs: 10_000 },
    );
    expect(reply.header).toEqual({ type: 'pong', generation: 1 });
    expect(Array.from(reply.attachments[0] as Uint8Array)).toEqual([9]);
  });

  it('without reconnect, a lost listener closes the dialed connection', async () => {
    const transport = socketIoTransport();
    const listener = await listenForConnections(transport, '127.0.0.1:0', { onConnection: () => {} });
    const client = await dialConnection(transport, listener.address);
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
    await expect(dialConnection(transport, address)).rejects.toMatchObject({
      code: DinferErrorCode.TRANSPORT_CONNECT,
    });
  });
});
