/**
 * Test helpers: a recording logger, and raw socket.io clients that speak (or break) the
 * dinfer protocol by hand, to play a misbehaving peer.
 */
import { DialerHandshake, type Logger, PROTOCOL_VERSION } from '@dinfer/core';
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

/** Options for {@link rawClient}. */
export interface RawClientOptions {
  /** Protocol version put in the socket.io auth payload. Default: the real one. */
  protocol?: number;
  /** Run the dinfer handshake with this token (`null`: don't run it). Default: no token, run it. */
  token?: string | null | undefined;
}

/** Resolves with the next emission of `event` on `socket`. */
export function next(socket: Socket, event: string): Promise<unknown[]> {
  return new Promise((resolve) => socket.once(event, (...args: unknown[]) => resolve(args)));
}

/** Connects a bare socket.io-client, optionally completing the dinfer handshake by hand. */
export async function rawClient(address: string, options: RawClientOptions = {}): Promise<Socket> {
  const socket = io(`http://${address}`, {
    transports: ['websocket'],
    forceNew: true,
    reconnection: false,
    auth: { protocol: options.protocol ?? PROTOCOL_VERSION },
  });
  const hello = next(socket, 'dinfer:hello');
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('connect_error', reject);
  });
  if (options.token === null) return socket;
  const handshake = new DialerHandshake(options.token ?? undefined);
  const [helloMessage] = await hello;
  const welcome = next(socket, 'dinfer:welcome');
  socket.emit('dinfer:auth', handshake.answer(helloMessage));
  const [welcomeMessage] = await welcome;
  handshake.confirm(welcomeMessage);
  return socket;
}

/** Resolves with the disconnect reason once `socket` disconnects. */
export function disconnected(socket: Socket): Promise<string> {
  if (socket.disconnected && !socket.active) return Promise.resolve('already disconnected');
  return new Promise((resolve) => socket.once('disconnect', (reason: string) => resolve(reason)));
}

/**
 * Sends garbage the way a broken or hostile peer would, after authenticating: a malformed
 * message (`malformed`) or an attachment above `maxFrameBytes` (`oversize`). Resolves once
 * the listener has dropped the socket.
 */
export async function sendRawGarbage(
  address: string,
  kind: 'malformed' | 'oversize',
  maxFrameBytes: number,
): Promise<string> {
  const socket = await rawClient(address);
  const gone = disconnected(socket);
  if (kind === 'malformed') socket.emit('dinfer:msg', 'not-an-object', [1, 2, 3]);
  else socket.emit('dinfer:msg', { type: 'big' }, [Buffer.alloc(maxFrameBytes + 1024)]);
  const reason = await gone;
  socket.disconnect();
  return reason;
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
