/**
 * `@dinfer/transport-tcp`: the dinfer {@link Transport} over TCP or TLS: length-prefixed
 * binary frames (core's frame codec) on raw channels, which core's upgrader authenticates,
 * pools and redials.
 *
 * @packageDocumentation
 */
export type { Transport } from '@dinfer/core';
export { formatTcpAddress, parseTcpAddress, type TcpAddress } from './address.js';
export type { TcpTlsOptions, TcpTransportOptions } from './options.js';
export { type SocketChannel, type SocketChannelOptions, socketChannel } from './socket-channel.js';
export { tcpTransport } from './tcp-transport.js';
