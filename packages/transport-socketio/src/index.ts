/**
 * `@dinfer/transport-socketio`: dinfer's Transport over Socket.IO (socket.io server +
 * socket.io-client, WebSocket only), for workers behind proxies or in browsers. A thin
 * channel over one event; core's upgrader does the rest.
 *
 * @packageDocumentation
 */

export * from './events.js';
export * from './options.js';
export * from './transport.js';
