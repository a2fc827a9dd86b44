/**
 * `@dinfer/transport-tcp`: the dinfer {@link Transport} over TCP or TLS, with length-prefixed
 * binary frames (core's frame codec), cluster-token authentication, optional transparent
 * reconnect and per-peer connection pools.
 *
 * @packageDocumentation
 */
export type { Transport } from '@dinfer/core';
export { formatTcpAddress, parseTcpAddress, type TcpAddress } from './address.js';
export { backoffDelay, type ReconnectOptions } from './backoff.js';
export { HANDSHAKE_MAX_FRAME_BYTES, type TcpTlsOptions, type TcpTransportOptions } from './options.js';
export { type SocketChannel, type SocketChannelOptions, socketChannel } from './socket-channel.js';
export { tcpTransport } from './tcp-transport.js';
