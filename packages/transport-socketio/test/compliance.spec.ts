/**
 * Core's transport compliance suite against socketIoTransport: plain, reconnecting and pooled
 * dials, with hostile input below the channel sent by raw socket.io clients.
 */
import { PROTOCOL_VERSION } from '@dinfer/core';
import { transportSuite } from '@dinfer/core/testing';
import { io } from 'socket.io-client';
import { expect, it } from 'vitest';
import { SOCKETIO_PIECE_BYTES, socketIoTransport } from '../src/index.js';

const SMALL_FRAME = 1024 * 1024;

/**
 * A raw, unauthenticated socket.io link that breaks the wire before the handshake: an event
 * that is not a frame piece (`malformed`), or one WebSocket message above the listener's
 * buffer (`oversize`). Resolves once the listener dropped it; rejects when it stays up.
 */
async function sendRawGarbage(address: string, kind: 'malformed' | 'oversize'): Promise<void> {
  const socket = io(`http://${address}`, {
    transports: ['websocket'],
    forceNew: true,
    reconnection: false,
    auth: { protocol: PROTOCOL_VERSION },
  });
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`listener kept the ${kind} link open`)), 5000);
      socket.once('disconnect', () => {
        clearTimeout(timer);
        resolve();
      });
      socket.once('connect_error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
      socket.once('connect', () => {
        if (kind === 'malformed')
          socket.emit('dinfer:frame', { type: 'auth', protocol: PROTOCOL_VERSION, nonce: 42 });
        else socket.emit('dinfer:frame', Buffer.alloc(SOCKETIO_PIECE_BYTES * 2));
      });
    });
  } finally {
    socket.disconnect();
  }
}

const factory = {
  create: (options: { maxFrameBytes?: number | undefined }) => socketIoTransport(options),
  listenAddress: () => '127.0.0.1:0',
};

const reports = [
  transportSuite(it, factory, { name: 'socketio', smallFrameBytes: SMALL_FRAME, sendRawGarbage }),
  transportSuite(it, factory, {
    name: 'socketio+reconnect',
    smallFrameBytes: SMALL_FRAME,
    maxPayloadBytes: 8 * 1024 * 1024,
    sendRawGarbage,
    dial: { reconnect: { initialDelayMs: 20, maxDelayMs: 200 } },
  }),
  transportSuite(it, factory, {
    name: 'socketio+pool',
    smallFrameBytes: SMALL_FRAME,
    maxPayloadBytes: 8 * 1024 * 1024,
    sendRawGarbage,
    dial: { poolSize: 2 },
  }),
];

it('runs every compliance test on every variant (none skipped)', () => {
  for (const report of reports) expect(report.skipped).toEqual([]);
});
