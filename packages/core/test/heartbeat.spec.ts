import { createHmac } from 'node:crypto';
import dgram from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import { DinferErrorCode, isDinferError } from '../src/errors.js';
import type { HeartbeatInfo, HeartbeatReceiver } from '../src/heartbeats.js';
import type { Metrics } from '../src/metrics.js';
import {
  decodeHeartbeat,
  encodeHeartbeat,
  HEARTBEAT_MAX_PACKET_BYTES,
  type HeartbeatPayload,
} from '../src/node/heartbeat/heartbeat-packet.js';
import { createHeartbeatReceiver } from '../src/node/heartbeat/heartbeat-receiver.js';
import { createHeartbeatSender } from '../src/node/heartbeat/heartbeat-sender.js';
import type { WorkerLoad } from '../src/scheduler.js';

const TOKEN = 'cluster-secret';
const LOAD: WorkerLoad = { cpu: 0.25, freeMemoryBytes: 1_000_000, queueLength: 3, latencyMs: 12.5 };

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

interface Beat {
  readonly workerId: string;
  readonly load: WorkerLoad;
  readonly info: HeartbeatInfo;
}

/** A receiver that records beats, timeouts and metric increments. */
async function receiver(options: { timeoutMs?: number; host?: string } = {}) {
  const beats: Beat[] = [];
  const timeouts: string[] = [];
  const counters = new Map<string, number>();
  const metrics: Metrics = {
    increment(name, labels) {
      const key = `${name}${labels?.result ? `{${labels.result}}` : ''}`;
      counters.set(key, (counters.get(key) ?? 0) + 1);
    },
    observe() {},
    set() {},
  };
  const rx = await createHeartbeatReceiver({
    port: 0,
    host: options.host ?? '127.0.0.1',
    timeoutMs: options.timeoutMs,
    onBeat: (workerId, load, info) => beats.push({ workerId, load, info }),
    onTimeout: (workerId) => timeouts.push(workerId),
    metrics,
  });
  cleanups.push(() => rx.stop());
  const count = (result: string) => counters.get(`dinfer_heartbeat_received_total{${result}}`) ?? 0;
  return { rx, beats, timeouts, count, counters };
}

function sender(
  rx: HeartbeatReceiver,
  workerId: string,
  options: { key?: string; host?: string; load?: () => WorkerLoad } = {},
) {
  const tx = createHeartbeatSender({
    host: options.host ?? '127.0.0.1',
    port: rx.port,
    key: options.key,
    workerId,
    intervalMs: 40,
    getLoad: options.load ?? (() => LOAD),
  });
  cleanups.push(() => tx.stop());
  return tx;
}

/** A raw UDP socket to send hand-made datagrams. */
async function rawSocket(): Promise<(packet: Uint8Array, port: number) => Promise<void>> {
  const socket = dgram.createSocket('udp4');
  cleanups.push(() => new Promise((done) => socket.close(() => done())));
  return (packet, port) =>
    new Promise((resolve, reject) =>
      socket.send(packet, port, '127.0.0.1', (e) => (e ? reject(e) : resolve())),
    );
}

async function until(condition: () => boolean, timeoutMs = 3000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function payload(overrides: Partial<Record<keyof HeartbeatPayload, unknown>> = {}): HeartbeatPayload {
  return {
    v: 1,
    workerId: 'w-raw',
    boot: 'bootA',
    bootAt: Date.now() - 1000,
    seq: 1,
    sentAt: Date.now(),
    load: LOAD,
    ...overrides,
  } as HeartbeatPayload;
}

/** Builds a signed datagram by hand (independently of encodeHeartbeat) from any JSON text. */
function handSigned(json: string, token: string): Buffer {
  const prefix = Buffer.from([0x44, 0x48, 0x42, 1, 1]);
  const body = Buffer.from(json, 'utf8');
  const mac = createHmac('sha256', token).update(prefix).update(body).digest();
  return Buffer.concat([prefix, mac, body]);
}

describe('heartbeat packet', () => {
  it('round-trips signed and unsigned payloads and matches a hand-built signature', () => {
    const p = payload();
    const signed = encodeHeartbeat(p, TOKEN);
    expect(signed.equals(handSigned(JSON.stringify(p), TOKEN))).toBe(true);
    expect(decodeHeartbeat(signed, () => TOKEN)).toEqual({ ok: true, payload: p, signed: true });
    const unsigned = encodeHeartbeat(p);
    expect(decodeHeartbeat(unsigned)).toEqual({ ok: true, payload: p, signed: false });
    expect(decodeHeartbeat(unsigned, () => 'unsigned')).toEqual({ ok: true, payload: p, signed: false });
    expect(decodeHeartbeat(unsigned, () => TOKEN)).toMatchObject({ ok: false, reason: 'unsigned' });
    expect(decodeHeartbeat(signed, () => 'other-token')).toMatchObject({ ok: false, reason: 'forged' });
    // The key is the one of the worker the payload names; an unknown worker is refused.
    const keys = new Map([[p.workerId, TOKEN]]);
    expect(decodeHeartbeat(signed, (id) => keys.get(id))).toMatchObject({ ok: true });
    const other = encodeHeartbeat({ ...p, workerId: 'w-other' }, TOKEN);
    expect(decodeHeartbeat(other, (id) => keys.get(id))).toMatchObject({
      ok: false,
      reason: 'unknown-worker',
    });
  });

  it('refuses to encode invalid or oversized payloads', () => {
    const bad = [
      payload({ workerId: '' }),
      payload({ seq: -1 }),
      payload({ load: { ...LOAD, cpu: 1.5 } }),
      payload({ load: { ...LOAD, queueLength: 0.5 } }),
      payload({ sentAt: Number.NaN }),
      payload({ boot: 'has space' }),
      payload({ workerId: 'x'.repeat(257) }),
    ];
    for (const p of bad) {
      expect(() => encodeHeartbeat(p, TOKEN)).toThrow(
        expect.objectContaining({ code: DinferErrorCode.INVALID_ARGUMENT }) as unknown as Error,
      );
    }
  });

  it('reports a reason for every kind of bad datagram without throwing', () => {
    const p = payload();
    const good = encodeHeartbeat(p, TOKEN);
    const flipped = Buffer.from(good);
    flipped[flipped.length - 3]! ^= 0x01;
    const cases: [Uint8Array, string][] = [
      [Buffer.alloc(0), 'malformed'],
      [Buffer.from('hello world'), 'malformed'],
      [good.subarray(0, 20), 'malformed'],
      [Buffer.concat([Buffer.from([0x44, 0x48, 0x42, 9, 1]), good.subarray(5)]), 'malformed'],
      [flipped, 'forged'],
      [handSigned('{not json', TOKEN), 'malformed'],
      [handSigned('[1,2,3]', TOKEN), 'malformed'],
      [handSigned(JSON.stringify({ ...p, seq: 'NaN' }), TOKEN), 'malformed'],
      [handSigned(JSON.stringify({ ...p, load: { ...LOAD, cpu: 'NaN' } }), TOKEN), 'malformed'],
      [handSigned(JSON.stringify({ ...p, load: null }), TOKEN), 'malformed'],
      [handSigned(JSON.stringify({ ...p, v: 2 }), TOKEN), 'malformed'],
      [Buffer.alloc(HEARTBEAT_MAX_PACKET_BYTES + 1, 0x44), 'too-large'],
    ];
    for (const [packet, reason] of cases) {
      expect(decodeHeartbeat(packet, () => TOKEN)).toMatchObject({ ok: false, reason });
    }
  });
});

describe('heartbeat sender and receiver', () => {
  it('delivers signed beats with the load and updates lastSeen', async () => {
    const { rx, beats } = await receiver();
    rx.watch('w1', TOKEN);
    let queue = 0;
    const tx = sender(rx, 'w1', { key: TOKEN, load: () => ({ ...LOAD, queueLength: queue++ }) });
    expect(rx.lastSeen('w1')).toBeUndefined();
    const before = Date.now();
    tx.start();
    await until(() => beats.length >= 3);
    await tx.stop();
    expect(beats.slice(0, 3).map((b) => b.load.queueLength)).toEqual([0, 1, 2]);
    expect(beats[0]!.load).toEqual({ ...LOAD, queueLength: 0 });
    expect(beats.every((b) => b.workerId === 'w1' && b.info.signed && !b.info.restarted)).toBe(true);
    const seqs = beats.map((b) => b.info.seq);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    expect(new Set(seqs).size).toBe(seqs.length);
    const seen = rx.lastSeen('w1')!;
    expect(seen).toBeGreaterThanOrEqual(before);
    expect(seen).toBe(beats.at(-1)!.info.receivedAt);
    expect(rx.rejected).toBe(0);
    expect(rx.accepted).toBe(beats.length);
  });

  it('ignores forged, unsigned, unknown, replayed, stale and garbage datagrams', async () => {
    const { rx, beats, count } = await receiver();
    rx.watch('w-raw', TOKEN);
    const send = await rawSocket();
    const now = Date.now();
    const first = payload({ workerId: 'w-raw', seq: 5, sentAt: now });
    const good = encodeHeartbeat(first, TOKEN);
    await send(good, rx.port);
    await until(() => beats.length === 1);

    await send(good, rx.port); // exact replay
    await send(encodeHeartbeat({ ...first, seq: 4 }, TOKEN), rx.port); // older seq, same run
    await send(
      encodeHeartbeat({ ...first, boot: 'oldRun', bootAt: first.bootAt - 5000, seq: 99 }, TOKEN),
      rx.port,
    );
    await send(encodeHeartbeat({ ...first, seq: 6 }, 'wrong-token'), rx.port); // forged
    await send(encodeHeartbeat({ ...first, seq: 7 }), rx.port); // unsigned
    await send(encodeHeartbeat({ ...first, seq: 8, sentAt: now - 120_000 }, TOKEN), rx.port); // stale
    await send(encodeHeartbeat({ ...first, seq: 9, sentAt: now + 120_000 }, TOKEN), rx.port); // from the future
    await send(Buffer.from('garbage'), rx.port);
    await send(handSigned('{"v":1', TOKEN), rx.port);
    await send(
      handSigned(JSON.stringify({ ...first, seq: 10, load: { ...LOAD, cpu: 'NaN' } }), TOKEN),
      rx.port,
    );
    await send(encodeHeartbeat({ ...first, workerId: 'w-unwatched', seq: 12 }, TOKEN), rx.port); // unknown
    await until(() => rx.rejected === 11);

    expect(beats).toHaveLength(1);
    expect(count('replayed')).toBe(3);
    expect(count('forged')).toBe(1);
    expect(count('unsigned')).toBe(1);
    expect(count('stale')).toBe(2);
    expect(count('malformed')).toBe(3);
    expect(count('unknown-worker')).toBe(1);
    expect(count('accepted')).toBe(1);

    // A fresh, correctly signed beat of the same run is still accepted after all that.
    await send(encodeHeartbeat({ ...first, seq: 11, sentAt: Date.now() }, TOKEN), rx.port);
    await until(() => beats.length === 2);
    expect(beats[1]!.info.seq).toBe(11);
  });

  it('accepts unsigned and signed beats of a worker watched without a key (a cluster with no credential)', async () => {
    const { rx, beats } = await receiver();
    rx.watch('w-raw', 'unsigned');
    const send = await rawSocket();
    await send(encodeHeartbeat(payload({ seq: 1 })), rx.port);
    await send(encodeHeartbeat(payload({ seq: 2 }), 'any-token'), rx.port);
    await until(() => beats.length === 2);
    expect(beats.map((b) => b.info.signed)).toEqual([false, true]);
    expect(rx.rejected).toBe(0);
  });

  it('reports a silent watched worker once, and re-arms after a beat', async () => {
    const { rx, beats, timeouts } = await receiver({ timeoutMs: 300 });
    rx.watch('ghost', TOKEN);
    const tx = sender(rx, 'alive', { key: TOKEN });
    rx.watch('alive', TOKEN);
    tx.start();
    await sleep(700);
    expect(timeouts).toEqual(['ghost']); // once, although two timeout periods passed
    expect(beats.length).toBeGreaterThan(5);

    await tx.stop();
    await until(() => timeouts.length === 2, 2000);
    expect(timeouts).toEqual(['ghost', 'alive']);

    tx.start(); // beats again: re-armed, then times out again once silent
    await until(() => beats.some((b) => b.info.restarted));
    await tx.stop();
    await until(() => timeouts.length === 3, 2000);
    expect(timeouts[2]).toBe('alive');

    rx.forget('ghost');
    rx.forget('alive');
    expect(rx.lastSeen('alive')).toBeUndefined();
    await sleep(400);
    expect(timeouts).toHaveLength(3);
  });

  it('accepts a restarted sender (new run) with a lower seq', async () => {
    const { rx, beats } = await receiver();
    rx.watch('w-restart', TOKEN);
    const first = sender(rx, 'w-restart', { key: TOKEN });
    first.start();
    await until(() => beats.length >= 3);
    await first.stop();
    const maxSeqBefore = Math.max(...beats.map((b) => b.info.seq));
    const countBefore = beats.length;
    await sleep(5); // a new process starts at a later time
    const second = sender(rx, 'w-restart', { key: TOKEN });
    second.start();
    await until(() => beats.length >= countBefore + 2);
    await second.stop();
    const after = beats.slice(countBefore);
    expect(after[0]!.info.restarted).toBe(true);
    expect(after[0]!.info.seq).toBeLessThan(maxSeqBefore);
    expect(after[0]!.info.boot).not.toBe(beats[0]!.info.boot);
    expect(after[1]!.info.restarted).toBe(false);
    expect(rx.rejected).toBe(0);
  });

  it('works over udp6 and resolves host names', async () => {
    const { rx, beats } = await receiver({ host: '::1' });
    rx.watch('w6', TOKEN);
    const tx = sender(rx, 'w6', { key: TOKEN, host: '::1' });
    tx.start();
    await until(() => beats.length >= 1);
    await tx.stop();
    expect(beats[0]!.info.address).toBe('::1');

    const v4 = await receiver();
    v4.rx.watch('w-named', TOKEN);
    const named = sender(v4.rx, 'w-named', { key: TOKEN, host: 'localhost' });
    named.start();
    // localhost may resolve to ::1 on some systems, where a udp4 receiver cannot hear it.
    const { lookup } = await import('node:dns/promises');
    if ((await lookup('localhost')).family === 4) {
      await until(() => v4.beats.length >= 1);
      expect(v4.beats[0]!.workerId).toBe('w-named');
    } else {
      await sleep(200);
      expect(v4.beats).toHaveLength(0);
    }
  });

  it('validates options', async () => {
    const base = {
      host: '127.0.0.1',
      port: 9,
      key: TOKEN,
      workerId: 'w',
      intervalMs: 10,
      getLoad: () => LOAD,
    };
    for (const bad of [
      { port: 0 },
      { port: 70000 },
      { workerId: '' },
      { intervalMs: 0 },
      { key: '' },
      { host: '' },
    ]) {
      expect(() => createHeartbeatSender({ ...base, ...bad })).toThrow(/heartbeat|workerId/);
    }
    const noop = { onBeat() {}, onTimeout() {} };
    await expect(createHeartbeatReceiver({ port: -1, ...noop })).rejects.toSatisfy((e: unknown) =>
      isDinferError(e, DinferErrorCode.INVALID_ARGUMENT),
    );
    await expect(createHeartbeatReceiver({ port: 0, timeoutMs: 0, ...noop })).rejects.toSatisfy(
      (e: unknown) => isDinferError(e, DinferErrorCode.INVALID_ARGUMENT),
    );
    const { rx } = await receiver();
    await expect(createHeartbeatReceiver({ port: rx.port, host: '127.0.0.1', ...noop })).rejects.toSatisfy(
      (e: unknown) => isDinferError(e, DinferErrorCode.TRANSPORT_CONNECT),
    );
  });

  it('skips a beat when getLoad throws or returns an invalid load, and keeps going', async () => {
    const { rx, beats } = await receiver();
    rx.watch('w-flaky', TOKEN);
    let calls = 0;
    const tx = sender(rx, 'w-flaky', {
      key: TOKEN,
      load: () => {
        calls++;
        if (calls === 1) throw new Error('boom');
        if (calls === 2) return { ...LOAD, cpu: Number.NaN };
        return LOAD;
      },
    });
    tx.start();
    await until(() => beats.length >= 2);
    await tx.stop();
    expect(calls).toBeGreaterThanOrEqual(4);
    expect(beats[0]!.info.seq).toBe(0);
    expect(rx.rejected).toBe(0);
  });

  it("lets only the key of a worker's own session speak for it: another token holder cannot, even claiming a newer run", async () => {
    const { rx, beats, timeouts, count } = await receiver({ timeoutMs: 400 });
    const session = 'session-key-of-w1';
    rx.watch('w1', session);
    const real = sender(rx, 'w1', { key: session });
    real.start();
    await until(() => beats.length >= 2);
    const send = await rawSocket();
    // What a second worker of the cluster could send: beats for w1 from a "newer run",
    // signed with the cluster token or with its own session key.
    const attack = payload({ workerId: 'w1', boot: 'evilRun', bootAt: Date.now() + 10_000, seq: 1_000_000 });
    for (let i = 0; i < 20; i++) {
      await send(encodeHeartbeat({ ...attack, seq: attack.seq + i, sentAt: Date.now() }, TOKEN), rx.port);
      await send(
        encodeHeartbeat({ ...attack, seq: attack.seq + i, sentAt: Date.now() }, 'session-key-of-w2'),
        rx.port,
      );
    }
    await until(() => count('forged') === 40);
    const accepted = beats.length;
    await sleep(600);
    await real.stop();
    // The real worker's beats never became "replays", and it never timed out.
    expect(beats.length).toBeGreaterThan(accepted + 3);
    expect(beats.every((b) => b.info.boot !== 'evilRun')).toBe(true);
    expect(count('replayed')).toBe(0);
    expect(timeouts).toEqual([]);
  });

  it('starts afresh when a worker joins again with a new session key, refusing the old key', async () => {
    const { rx, beats, count } = await receiver();
    rx.watch('w1', 'first-session');
    const first = sender(rx, 'w1', { key: 'first-session' });
    first.start();
    await until(() => beats.length >= 2);
    rx.watch('w1', 'second-session');
    await until(() => count('forged') >= 1);
    await first.stop();
    const second = sender(rx, 'w1', { key: 'second-session' });
    const before = beats.length;
    second.start();
    await until(() => beats.length >= before + 2);
    await second.stop();
    expect(beats.slice(before)[0]!.info.seq).toBe(0);
  });
});
