/** Test helpers: a raw socket that speaks the dinfer frame protocol by hand. */
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { type Envelope, encodeFrame, type MessageHeader } from '@dinfer/core';
import { FrameInbox, handshakeByHand, seededRandom } from '@dinfer/core/testing';
import { parseTcpAddress } from '../src/address.js';

/** Deterministic PRNG (mulberry32). */
export const rng = seededRandom;

const fixture = (name: string): string =>
  readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8');

/** TLS material for 127.0.0.1 / ::1 / localhost, signed by the test CA. */
export const tlsFixtures = {
  ca: fixture('ca.crt'),
  cert: fixture('server.crt'),
  key: fixture('server.key'),
};

/** A raw TCP client that decodes frames, for tests that need control over the bytes. */
export class RawClient {
  readonly socket: Socket;
  readonly #inbox = new FrameInbox();
  readonly closed: Promise<void>;

  private constructor(socket: Socket) {
    this.socket = socket;
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.on('error', () => {});
    socket.on('data', (chunk: Buffer) => this.#inbox.push(chunk));
  }

  /** Connects without sending anything. */
  static async connect(address: string): Promise<RawClient> {
    const { host, port } = parseTcpAddress(address);
    const socket = connect({ host, port });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    socket.setNoDelay(true);
    return new RawClient(socket);
  }

  /** Connects and completes the handshake by hand. */
  static async authenticated(address: string, token: string | undefined): Promise<RawClient> {
    const client = await RawClient.connect(address);
    const handshake = handshakeByHand(token);
    const hello = await client.next();
    client.write(frame(await handshake.answer(hello.header)));
    await handshake.confirm((await client.next()).header);
    return client;
  }

  /** The next decoded envelope. */
  next(timeoutMs = 5000): Promise<Envelope> {
    return this.#inbox.next(timeoutMs);
  }

  write(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** One encoded frame as a single buffer. */
export function frame(header: MessageHeader, attachments: Uint8Array[] = []): Uint8Array {
  return Buffer.concat(encodeFrame({ header, attachments }));
}

/** An rpc request frame as core's connection engine expects it. */
export function rpcRequest(id: number, body: MessageHeader, attachments: Uint8Array[] = []): Uint8Array {
  return frame({ type: 'rpc', kind: 'request', id, body }, attachments);
}

/** Resolves once `predicate` is true, polling. */
export async function waitFor(predicate: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
