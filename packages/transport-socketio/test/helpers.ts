/**
 * Test helpers: a recording logger, and raw socket.io clients that speak (or break) the
 * dinfer wire by hand (core's frames in `dinfer:frame` pieces), to play a misbehaving peer.
 */
import { type Envelope, encodeFrame, type Logger, type MessageHeader, PROTOCOL_VERSION } from '@dinfer/core';
import { FrameInbox, handshakeByHand } from '@dinfer/core/testing';
import { io, type Socket } from 'socket.io-client';

/** One recorded log call. */
export interface LogEntry {
  level: 'debug' | 'info' | 'warn' | 'error';
  context: Record<string, unknown>;
  message: string;
}

/** A logger that keeps every entry, for assertions. */
export function recordingLogger(): Logger & { entries: LogEntry[] } {
  const entries: LogEntry[] = [];
  const at =
    (level: LogEntry['level']) =>
    (context: Record<string, unknown>, message: string): void => {
      entries.push({ level, context, message });
    };
  return { entries, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

/** One frame of core's codec as a single buffer. */
export function frameBytes(header: MessageHeader, attachments: Uint8Array[] = []): Buffer {
  return Buffer.concat(encodeFrame({ header, attachments }, { maxFrameBytes: 0xffff_ffff }));
}

/** Options for {@link RawPeer.connect}. */
export interface RawClientOptions {
  /** Protocol version put in the socket.io auth payload. Default: the real one. */
  protocol?: number;
  /** Run the dinfer handshake with this token (`null`: don't run it). Default: no token, run it. */
  token?: string | null | undefined;
}

/** A bare socket.io-client that reads and writes dinfer frames by hand. */
export class RawPeer {
  readonly socket: Socket;
  readonly #inbox = new FrameInbox();

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on('dinfer:frame', (piece: Buffer) => this.#inbox.push(new Uint8Array(piece)));
  }

  /** Connects, optionally completing the dinfer handshake by hand. */
  static async connect(address: string, options: RawClientOptions = {}): Promise<RawPeer> {
    const socket = io(`http://${address}`, {
      transports: ['websocket'],
      forceNew: true,
      reconnection: false,
      auth: { protocol: options.protocol ?? PROTOCOL_VERSION },
    });
    const peer = new RawPeer(socket);
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve());
      socket.once('connect_error', reject);
    });
    if (options.token === null) return peer;
    const handshake = handshakeByHand(options.token ?? undefined);
    const hello = await peer.next();
    peer.send(await handshake.answer(hello.header));
    await handshake.confirm((await peer.next()).header);
    return peer;
  }

  /** Sends one frame in one piece. */
  send(header: MessageHeader, attachments: Uint8Array[] = []): void {
    this.socket.emit('dinfer:frame', frameBytes(header, attachments));
  }

  /** The next decoded envelope. */
  next(timeoutMs = 5000): Promise<Envelope> {
    return this.#inbox.next(timeoutMs);
  }

  /** Resolves with the disconnect reason once the socket disconnects. */
  disconnected(): Promise<string> {
    return disconnected(this.socket);
  }

  close(): void {
    this.socket.disconnect();
  }
}

/** Resolves with the next emission of `event` on `socket`. */
export function next(socket: Socket, event: string): Promise<unknown[]> {
  return new Promise((resolve) => socket.once(event, (...args: unknown[]) => resolve(args)));
}

/** Resolves with the disconnect reason once `socket` disconnects. */
export function disconnected(socket: Socket): Promise<string> {
  if (socket.disconnected && !socket.active) return Promise.resolve('already disconnected');
  return new Promise((resolve) => socket.once('disconnect', (reason: string) => resolve(reason)));
}

/** A deterministic pseudo-random byte pattern (independent of the transport). */
export function pattern(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** Waits until `check()` is true, polling every 10 ms, or throws after `timeoutMs`. */
export async function eventually(check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
