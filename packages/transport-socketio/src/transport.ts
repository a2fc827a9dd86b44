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
 * Creates a dinfer {@link Transport} over Socket.IO (WebSocket only): raw frame channels,
 * which core's upgrader (`listenForConnections`, `dialConnection`) authenticates, runs,
 * pools and redials. The listener runs a `node:http` server with a socket.io `Server`;
 * dialers use socket.io-client. Each channel carries core's binary frames, cut into pieces
 * of at most 1 MiB (one socket.io event with one binary part each), so socket.io never
 * buffers more than a piece, and frames above 64 KiB are refused until the peer has
 * authenticated.
 *
 * Throws `DINFER_ERR_INVALID_ARGUMENT` for bad options.
 *
 * @example
 * ```ts
 * const transport = socketIoTransport();
 * const listener = await listenForConnections(transport, '127.0.0.1:0', {
 *   token: process.env.DINFER_TOKEN,
 *   onConnection: (conn) => conn.onRequest(async (req) => ({ header: { type: 'pong' }, attachments: req.attachments })),
 * });
 * const conn = await dialConnection(transport, listener.address, { token: process.env.DINFER_TOKEN });
 * const reply = await conn.request({ header: { type: 'ping' }, attachments: [new Uint8Array(16)] });
 * ```
 */
export function socketIoTransport(options: SocketIoTransportOptions = {}): Transport {
  const resolved = resolveOptions(options);
  return {
    [transportSymbol]: true,
    name: 'socketio',
    capabilities: { maxFrameBytes: resolved.maxFrameBytes },
    listen: (address, onChannel, listenOptions) =>
      listenSocketIo(address, onChannel, resolved, listenOptions?.signal),
    dial: (address, dialOptions) => dialSocketIo(address, resolved, dialOptions?.signal),
  };
}
