import { transportSuite } from '@dinfer/core/testing';
import { io } from 'socket.io-client';
import { it } from 'vitest';
import { socketIoTransport } from '../src/index.js';

const SMALL_FRAME = 1024 * 1024;

/**
 * A raw, unauthenticated socket.io link that breaks the protocol before the handshake: a
 * malformed `auth`, or a binary part above the listener's limit. Resolves once the listener
 * dropped it; rejects when it stays up.
 */
async function sendRawGarbage(address: string, kind: 'malformed' | 'oversize'): Promise<void> {
  const socket = io(`http://${address}`, {
    transports: ['websocket'],
    forceNew: true,
    reconnection: false,
    auth: { protocol: 1 },
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
          socket.emit('dinfer:auth', { type: 'auth', protocol: 1, nonce: 42, proof: [] });
        else socket.emit('dinfer:auth', Buffer.alloc(SMALL_FRAME * 2));
      });
    });
  } finally {
    socket.disconnect();
  }
}

transportSuite(
  it,
  {
    create: (options) => socketIoTransport({ token: options.token, maxFrameBytes: options.maxFrameBytes }),
    listenAddress: () => '127.0.0.1:0',
  },
  { name: 'socketio', smallFrameBytes: SMALL_FRAME, sendRawGarbage },
);

transportSuite(
  it,
  {
    create: (options) =>
      socketIoTransport({ token: options.token, maxFrameBytes: options.maxFrameBytes, reconnection: false }),
    listenAddress: () => '127.0.0.1:0',
  },
  { name: 'socketio without reconnection', smallFrameBytes: SMALL_FRAME, maxPayloadBytes: 8 * 1024 * 1024 },
);
