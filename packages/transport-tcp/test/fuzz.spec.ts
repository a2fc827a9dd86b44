/**
 * Fuzz: a TCP listener under a stream of malformed, truncated, oversized, bit-flipped and
 * lying frames, half-open and trickling connections, before and after authentication, while
 * a well-behaved peer keeps making requests. Every good request must succeed, the listener
 * must stay up, and memory must stay bounded.
 */

import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { type Connection, dialConnection, listenForConnections, type MessageHeader } from '@dinfer/core';
import { handshakeByHand } from '@dinfer/core/testing';
import { describe, expect, it } from 'vitest';
import { tcpTransport } from '../src/index.js';
import { frame, RawClient, rng, rpcRequest, waitFor } from './helpers.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const TOKEN = 'fuzz-token';
const HANDSHAKE_TIMEOUT_MS = 800;
const TARGET_FRAMES = 25_000;
const HARD_STOP_MS = 40_000;
const next = rng(20240607);
const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)]!;
const int = (n: number): number => Math.floor(next() * n);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function bytes(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = int(256);
  return out;
}

function u32(n: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, n);
  return out;
}

function flipBits(frameBytes: Uint8Array): Uint8Array {
  const out = Uint8Array.from(frameBytes);
  const flips = 1 + int(3);
  for (let i = 0; i < flips; i++) out[int(out.length)]! ^= 1 << int(8);
  return out;
}

function memory(): number {
  const usage = process.memoryUsage();
  return usage.heapUsed + usage.arrayBuffers;
}

type Kind = 'random' | 'truncated' | 'oversized' | 'bitflip' | 'lying' | 'valid';

/** `count` frames of one kind; `valid` builds a well-formed frame for the connection's phase. */
function build(kind: Kind, count: number, valid: () => Uint8Array): Uint8Array[] {
  const frames: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    switch (kind) {
      case 'random':
        frames.push(bytes(1 + int(300)));
        break;
      case 'truncated': {
        const whole = valid();
        frames.push(whole.subarray(0, int(whole.length)));
        break;
      }
      case 'oversized':
        // Claims up to 4 GiB; only a few bytes follow. Nothing may be allocated for it.
        frames.push(Buffer.concat([u32(0x0400_0000 + int(0xfbff_ffff)), bytes(int(64))]));
        break;
      case 'bitflip':
        frames.push(flipBits(valid()));
        break;
      case 'lying': {
        const whole = Uint8Array.from(valid());
        // Rewrite one of: the length prefix, the header length, the attachment count.
        const at = pick([0, 5, 9]);
        whole.set(u32(int(2) === 0 ? int(1 << 16) : 0xffff_ffff - int(1000)), at);
        frames.push(whole);
        break;
      }
      case 'valid':
        frames.push(valid());
        break;
    }
  }
  return frames;
}

describe('tcp listener fuzz', () => {
  it(`survives ${TARGET_FRAMES}+ hostile frames while a good peer keeps working`, async () => {
    const serverSide: Connection[] = [];
    const transport = tcpTransport();
    const listener = await listenForConnections(transport, '127.0.0.1:0', {
      token: TOKEN,
      handshakeTimeoutMs: HANDSHAKE_TIMEOUT_MS,
      onConnection: (connection) => {
        serverSide.push(connection);
        connection.onRequest(async (request) => ({
          header: { type: 'echo', n: request.header.n ?? null },
          attachments: request.attachments,
        }));
        connection.onMessage(() => {});
      },
    });
    const address = listener.address;
    let requestId = 1;
    const validRequest = (): Uint8Array =>
      rpcRequest(requestId++, { type: 'fuzz', n: requestId }, int(2) === 0 ? [] : [bytes(int(200))]);

    // The well-behaved peer.
    const good = await dialConnection(tcpTransport(), address, { token: TOKEN });
    const goodErrors: unknown[] = [];
    let goodRequests = 0;
    let stop = false;
    const goodLoop = (async () => {
      while (!stop) {
        const payload = bytes(int(2) === 0 ? int(64) : int(70_000));
        try {
          const reply = await good.request(
            { header: { type: 'good', n: goodRequests }, attachments: [payload] },
            { timeoutMs: 10_000 },
          );
          if (reply.header.n !== goodRequests || !Buffer.from(reply.attachments[0]!).equals(payload)) {
            goodErrors.push(new Error(`bad echo for request ${goodRequests}`));
          }
          goodRequests++;
        } catch (error) {
          goodErrors.push(error);
          await sleep(5);
        }
      }
    })();

    await sleep(100);
    gc();
    const baseline = memory();
    let peak = baseline;
    const sampler = setInterval(() => {
      peak = Math.max(peak, memory());
    }, 50);

    let frames = 0;
    const byKind = new Map<string, number>();
    const count = (label: string, n: number): void => {
      frames += n;
      byKind.set(label, (byKind.get(label) ?? 0) + n);
    };

    /** One hostile connection: optionally authenticate, then write a burst of frames split at random. */
    const attack = async (): Promise<void> => {
      const authed = next() < 0.6;
      const kind = pick<Kind>(['random', 'truncated', 'oversized', 'bitflip', 'bitflip', 'lying', 'valid']);
      const client = authed
        ? await RawClient.authenticated(address, TOKEN)
        : await RawClient.connect(address);
      let valid = validRequest;
      if (!authed) {
        // Before auth the well-formed frame is an `auth` answer to this connection's hello.
        const hello = await client.next().catch(() => undefined);
        const auth: MessageHeader = hello
          ? await handshakeByHand(TOKEN).answer(hello.header)
          : { type: 'auth' };
        valid = () => frame(auth);
      }
      const burst = build(kind, 5 + int(40), valid);
      const stream = Buffer.concat(burst);
      let at = 0;
      while (at < stream.length) {
        const size = 1 + int(stream.length);
        client.write(stream.subarray(at, at + size));
        at += size;
      }
      count(`${authed ? 'auth' : 'pre'}:${kind}`, burst.length);
      await Promise.race([client.closed, sleep(20 + int(30))]);
      client.destroy();
    };

    // Half-open and trickling connections, alongside the bursts.
    const halfOpen: Array<{ client: RawClient; authed: boolean; opened: number }> = [];
    const openHalf = async (): Promise<void> => {
      const authed = next() < 0.5;
      const client = authed
        ? await RawClient.authenticated(address, TOKEN)
        : await RawClient.connect(address);
      if (next() < 0.5) {
        const whole = authed ? validRequest() : frame({ type: 'auth', protocol: 1, nonce: 'x', proof: 'y' });
        client.write(whole.subarray(0, Math.max(1, whole.length >> 1)));
        count(authed ? 'auth:half-frame' : 'pre:half-frame', 1);
      }
      halfOpen.push({ client, authed, opened: Date.now() });
    };
    let slowDone = 0;
    let slowReplies = 0;
    const trickle = async (): Promise<void> => {
      const client = await RawClient.authenticated(address, TOKEN);
      const id = 1_000_000 + requestId++;
      const request = rpcRequest(id, { type: 'slow', n: id }, [bytes(16)]);
      for (let i = 0; i < request.length; i++) {
        client.write(request.subarray(i, i + 1));
        await sleep(1 + int(4));
      }
      count('auth:slow', 1);
      const reply = await client.next(5000);
      if (reply.header.kind === 'response' && reply.header.id === id) slowReplies++;
      client.destroy();
      slowDone++;
    };
    const trickleUnauthed = async (): Promise<void> => {
      // Far too slow to finish the handshake in time: the listener must cut it off.
      const client = await RawClient.connect(address);
      const auth = frame({ type: 'auth', protocol: 1, nonce: 'n', proof: 'p'.repeat(200) });
      for (let i = 0; i < auth.length && !client.socket.destroyed; i++) {
        client.write(auth.subarray(i, i + 1));
        await sleep(10);
      }
      count('pre:slow', 1);
      await client.closed;
    };

    const started = Date.now();
    const background: Array<Promise<unknown>> = [];
    for (let i = 0; i < 20; i++) background.push(openHalf());
    for (let i = 0; i < 4; i++) background.push(trickle());
    const slowUnauthed = [trickleUnauthed(), trickleUnauthed()];
    const workers = Array.from({ length: 12 }, async () => {
      while (frames < TARGET_FRAMES && Date.now() - started < HARD_STOP_MS) await attack();
    });
    await Promise.all(workers);
    await Promise.all(background);
    const slowClosedAt = Date.now();
    await Promise.all(slowUnauthed);
    expect(Date.now() - slowClosedAt).toBeLessThan(HANDSHAKE_TIMEOUT_MS + 2000);

    // Half-open connections that never authenticated are closed by the handshake timeout.
    const unauthedHalf = halfOpen.filter((h) => !h.authed);
    await Promise.all(unauthedHalf.map((h) => h.client.closed));
    for (const h of halfOpen) h.client.destroy();

    stop = true;
    await goodLoop;
    clearInterval(sampler);
    const elapsed = Date.now() - started;

    // The listener is still up and serves a fresh peer.
    const fresh = await dialConnection(tcpTransport(), address, { token: TOKEN });
    expect((await fresh.request({ header: { type: 'fresh', n: 7 }, attachments: [] })).header.n).toBe(7);
    await fresh.close();
    // Every hostile server-side connection is gone: only the good peer's remains.
    await waitFor(
      () => serverSide.filter((c) => c.isOpen).length === 1,
      5000,
      'hostile connections to close',
    );

    await good.close();
    await sleep(50);
    gc();
    const final = memory();
    console.log(
      `fuzz: ${frames} frames tried in ${elapsed} ms (${[...byKind].map(([k, v]) => `${k}=${v}`).join(' ')}); ` +
        `good peer: ${goodRequests} requests, ${goodErrors.length} errors; slow peers answered: ${slowReplies}/${slowDone}; ` +
        `memory baseline ${(baseline / 2 ** 20).toFixed(1)} MiB, peak ${(peak / 2 ** 20).toFixed(1)} MiB, final ${(final / 2 ** 20).toFixed(1)} MiB`,
    );

    expect(frames).toBeGreaterThanOrEqual(TARGET_FRAMES);
    expect(goodErrors).toEqual([]);
    expect(goodRequests).toBeGreaterThan(20);
    expect(slowReplies).toBe(4);
    expect(peak - baseline).toBeLessThan(256 * 2 ** 20);
    expect(final - baseline).toBeLessThan(32 * 2 ** 20);
    await listener.close();
  }, 60_000);
});
