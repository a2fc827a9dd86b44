/**
 * The `socketIoTransport` factory: dinfer's {@link Transport} over Socket.IO.
 *
 * @module
 */
import { type Transport, transportSymbol } from '@dinfer/core';
import { dialSocketIo } from './dialer.js';
import { listenSocketIo } from './listener.js';
import { resolveOptions, type SocketIoTransportOptions } from './options.js';

/**
 * Creates a dinfer {@link Transport} over Socket.IO (WebSocket only). The listener runs a
 * `node:http` server with a socket.io `Server`; dialers use socket.io-client. Every
 * connection authenticates with the cluster token (HMAC challenge/response) before anything
 * else; messages are a JSON header plus binary attachments sent as socket.io binary parts;
 * requests are answered through socket.io acks. With `reconnection` on (the default), a
 * dialed connection survives the listener restarting.
 *
 * Throws `DINFER_ERR_INVALID_ARGUMENT` for bad options.
 *
 * @example
 * ```ts
 * const transport = socketIoTransport({ token: process.env.DINFER_TOKEN });
 * const listener = await transport.listen('127.0.0.1:0', (conn) => {
 *   conn.onRequest(async (req) => ({ header: { type: 'pong' }, attachments: req.attachments }));
 * });
 * const conn = await transport.dial(listener.address);
 * const reply = await conn.request({ header: { type: 'ping' }, attachments: [new Uint8Array(16)] });
 * ```
 */
export function socketIoTransport(options: SocketIoTransportOptions = {}): Transport {
  const resolved = resolveOptions(options);
  return {
    [transportSymbol]: true,
    name: 'socketio',
    capabilities: { reconnects: resolved.reconnection, maxFrameBytes: resolved.maxFrameBytes },
    listen: (address, onConnection, listenOptions) =>
      listenSocketIo(address, onConnection, resolved, listenOptions?.signal),
    dial: (address, dialOptions) => dialSocketIo(address, resolved, dialOptions?.signal),
  };
}
