/**
 * A custom {@link Transport}, written against `@dinfer/core`'s public API only: the skeleton to
 * copy for a link dinfer does not ship. This one carries dinfer over plain WebSockets (the
 * `ws` package), e.g. through proxies that speak WebSocket but not raw TCP.
 *
 * A transport only moves frames. Core's upgrader does the rest: the cluster-token handshake,
 * requests and replies, timeouts, cancellation, reconnection, pooling and metrics. The channel
 * below streams core's frame codec over binary WebSocket messages of at most 1 MiB each, so the
 * socket server never buffers more than that per message and the frame decoder enforces the
 * small pre-authentication limit before anything larger is read.
 *
 * Addresses are `host:port` (`ws://host:port/dinfer` on the wire).
 *
 * @module
 */
import {
  ChannelEvents,
  DinferError,
  DinferErrorCode,
  encodeFrame,
  type FrameChannel,
  FrameDecoder,
  type Listener,
  PRE_AUTH_MAX_FRAME_BYTES,
  type Transport,
  transportSymbol,
} from '@dinfer/core';
import { WebSocket, WebSocketServer } from 'ws';

/** Largest WebSocket message either side sends or accepts. */
const PIECE_BYTES = 1024 * 1024;

/** Options of {@link webSocketTransport}. */
export interface WebSocketTransportOptions {
  /** Largest frame after authentication, in bytes. Default 256 MiB. */
  readonly maxFrameBytes?: number | undefined;
}

function closedError(remoteAddress: string, detail: string): DinferError {
  return new DinferError(DinferErrorCode.TRANSPORT_CLOSED, `${remoteAddress}: ${detail}`);
}

/** One WebSocket as a {@link FrameChannel}. */
function webSocketChannel(socket: WebSocket, remoteAddress: string, maxFrameBytes: number): FrameChannel {
  const decoder = new FrameDecoder({ maxFrameBytes: PRE_AUTH_MAX_FRAME_BYTES });
  const events = new ChannelEvents({ remoteAddress, onHandlerError: (error) => close(error) });
  const close = (error?: DinferError): void => {
    if (!events.finish(error)) return;
    socket.close(1000);
    setTimeout(() => socket.terminate(), 1000).unref();
  };
  socket.binaryType = 'nodebuffer';
  socket.on('message', (data: Buffer, isBinary: boolean) => {
    try {
      if (!isBinary) throw new DinferError(DinferErrorCode.PROTOCOL, `${remoteAddress} sent a text message`);
      for (const envelope of decoder.push(data)) events.deliver(envelope);
    } catch (error) {
      // The stream lost its framing (or the peer broke a limit): nothing more can be read.
      events.finish(error as DinferError);
      socket.terminate();
    }
  });
  socket.on('error', () => {});
  socket.on('close', () => events.finish(closedError(remoteAddress, 'the WebSocket closed')));
  return {
    remoteAddress,
    send(envelope) {
      if (events.closed) return Promise.reject(events.closedError());
      let bytes: Uint8Array;
      try {
        const parts = encodeFrame(envelope, { maxFrameBytes });
        bytes = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
      } catch (error) {
        return Promise.reject(error);
      }
      return new Promise<void>((resolve, reject) => {
        for (let at = 0; at < bytes.byteLength; at += PIECE_BYTES) {
          const last = at + PIECE_BYTES >= bytes.byteLength;
          socket.send(bytes.subarray(at, at + PIECE_BYTES), { binary: true }, (error) => {
            if (error) reject(closedError(remoteAddress, `send failed: ${error.message}`));
            else if (last) resolve();
          });
        }
      });
    },
    onEnvelope: (handler) => events.onEnvelope(handler),
    onClose: (handler) => events.onClose(handler),
    setMaxIncomingFrameBytes(bytes) {
      decoder.maxFrameBytes = bytes;
    },
    close,
  };
}

function parseAddress(address: string): { host: string; port: number } {
  const match = /^(.+):(\d+)$/.exec(address);
  const port = Number(match?.[2]);
  if (match === null || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new DinferError(
      DinferErrorCode.INVALID_ARGUMENT,
      `websocket address must be host:port, got "${address}"`,
    );
  }
  return { host: match[1]!.replace(/^\[|\]$/g, ''), port };
}

/** Creates the WebSocket transport. */
export function webSocketTransport(options: WebSocketTransportOptions = {}): Transport {
  const maxFrameBytes = options.maxFrameBytes ?? 256 * 1024 * 1024;
  return {
    [transportSymbol]: true,
    name: 'websocket',
    capabilities: { maxFrameBytes },
    async listen(address, onChannel): Promise<Listener> {
      const { host, port } = parseAddress(address);
      const server = new WebSocketServer({ host, port, path: '/dinfer', maxPayload: PIECE_BYTES });
      server.on('connection', (socket, request) => {
        const peer = `${request.socket.remoteAddress}:${request.socket.remotePort}`;
        onChannel(webSocketChannel(socket, peer, maxFrameBytes));
      });
      await new Promise<void>((resolve, reject) => {
        server.once('listening', resolve);
        server.once('error', (error) =>
          reject(
            new DinferError(DinferErrorCode.TRANSPORT_CONNECT, `cannot listen on ${address}`, {
              cause: error,
            }),
          ),
        );
      });
      const bound = server.address() as { address: string; port: number };
      return {
        address: `${bound.address.includes(':') ? `[${bound.address}]` : bound.address}:${bound.port}`,
        close: () =>
          new Promise<void>((resolve) => {
            for (const client of server.clients) client.terminate();
            server.close(() => resolve());
          }),
      };
    },
    dial(address, dialOptions) {
      const { host, port } = parseAddress(address);
      const hostname = host.includes(':') ? `[${host}]` : host;
      return new Promise<FrameChannel>((resolve, reject) => {
        const socket = new WebSocket(`ws://${hostname}:${port}/dinfer`, { maxPayload: PIECE_BYTES });
        const onAbort = (): void => socket.terminate();
        dialOptions?.signal?.addEventListener('abort', onAbort, { once: true });
        socket.once('open', () => {
          dialOptions?.signal?.removeEventListener('abort', onAbort);
          resolve(webSocketChannel(socket, address, maxFrameBytes));
        });
        socket.once('error', (error) => {
          dialOptions?.signal?.removeEventListener('abort', onAbort);
          reject(
            new DinferError(DinferErrorCode.TRANSPORT_CONNECT, `cannot connect to ${address}`, {
              cause: error,
            }),
          );
        });
      });
    },
  };
}
