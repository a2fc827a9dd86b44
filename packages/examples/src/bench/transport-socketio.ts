/**
 * The Socket.IO part of `pnpm bench:transport`: `socketIoTransport` against a bare socket.io
 * binary echo (a plain socket.io server and client emitting a Buffer with an ack, same
 * settings: WebSocket only, no compression, same `maxHttpBufferSize`), measured in the same
 * run and interleaved so machine noise hits both alike.
 *
 * For payloads of 1 KB, 100 KB, 1.6 MB (a ResNet50 mid-network activation) and 16 MB it
 * prints the median round-trip time of an echo request and the one-way throughput of a
 * stream of messages, and the ratio transport / baseline (in time: lower is better).
 * Target: every ratio <= 1.3.
 *
 * @module
 */

import { readFileSync } from 'node:fs';
import { createServer, type Server as HttpServer } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  type Connection,
  dialConnection,
  type Envelope,
  type Listener,
  listenForConnections,
} from '@dinfer/core';
import { socketIoTransport } from '@dinfer/transport-socketio';

/** Largest ratio transport / baseline we accept. */
const TARGET_RATIO = 1.3;

/** One payload size and how many operations to time at it. */
interface Case {
  readonly label: string;
  readonly bytes: number;
  /** Echo round trips per round (times {@link RTT_ROUNDS}, each side). */
  readonly rtt: number;
  /** Messages per timed throughput round. */
  readonly stream: number;
}

const CASES: readonly Case[] = [
  { label: '1 KB', bytes: 1024, rtt: 400, stream: 1200 },
  { label: '100 KB', bytes: 100 * 1024, rtt: 150, stream: 240 },
  { label: '1.6 MB', bytes: 28 * 28 * 512 * 4, rtt: 20, stream: 24 },
  { label: '16 MB', bytes: 16 * 1024 * 1024, rtt: 4, stream: 3 },
];

/** Echo rounds: each side does `rtt * RTT_ROUNDS` echoes, alternating one by one. */
const RTT_ROUNDS = 3;
/** Sends the transport keeps in flight while streaming. */
const SEND_WINDOW = 32;
/** Throughput rounds per side, alternating baseline / transport; the median counts. */
const STREAM_ROUNDS = 5;

// ---- the bare socket.io baseline ------------------------------------------------------------
// socket.io is a dependency of @dinfer/transport-socketio, not of this package; load that very
// copy, so baseline and transport run the same socket.io version.

interface BareSocket {
  emit(event: string, ...args: unknown[]): unknown;
  on(event: string, listener: (...args: never[]) => void): unknown;
  once(event: string, listener: (...args: never[]) => void): unknown;
  disconnect(): unknown;
}
interface BareServer {
  on(event: 'connection', listener: (socket: BareSocket) => void): unknown;
  close(): Promise<void>;
}
interface SocketIoModules {
  Server: new (http: HttpServer, options: Record<string, unknown>) => BareServer;
  io: (url: string, options: Record<string, unknown>) => BareSocket;
}

/**
 * Loads a package the way an ESM `import` from `@dinfer/transport-socketio` would (its
 * `exports` map, `import` + `node` conditions), so the baseline runs the very build the
 * transport runs (socket.io-client ships a different build to `require`).
 */
async function importFromTransport(name: string): Promise<Record<string, unknown>> {
  const fromTransport = createRequire(createRequire(import.meta.url).resolve('@dinfer/transport-socketio'));
  const manifestPath = fromTransport.resolve(`${name}/package.json`);
  const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as { exports?: unknown; main?: string };
  let target: unknown = (manifest.exports as Record<string, unknown> | undefined)?.['.'];
  for (const condition of ['import', 'node', 'default']) {
    if (typeof target === 'object' && target !== null && condition in target) {
      target = (target as Record<string, unknown>)[condition];
    }
  }
  const entry = typeof target === 'string' ? target : (manifest.main ?? 'index.js');
  const module = (await import(pathToFileURL(join(dirname(manifestPath), entry)).href)) as Record<
    string,
    unknown
  >;
  return { ...((module.default ?? {}) as Record<string, unknown>), ...module };
}

async function loadSocketIo(): Promise<SocketIoModules> {
  const server = await importFromTransport('socket.io');
  const client = await importFromTransport('socket.io-client');
  return { Server: server.Server as SocketIoModules['Server'], io: client.io as SocketIoModules['io'] };
}

/** Both ends of one pair under test, exposing the two measured operations. */
interface Pair {
  /** One echo round trip with `payload`. */
  echo(payload: Uint8Array): Promise<void>;
  /** Sends `count` one-way messages of `payload`; resolves when the receiver has them all. */
  stream(payload: Uint8Array, count: number): Promise<void>;
  close(): Promise<void>;
}

const MAX_FRAME_BYTES = 256 * 1024 * 1024;
const MAX_WS_MESSAGE = MAX_FRAME_BYTES + 64 * 1024;

async function bareSocketIoPair(modules: SocketIoModules): Promise<Pair> {
  const http = createServer();
  const server = new modules.Server(http, {
    transports: ['websocket'],
    perMessageDeflate: false,
    httpCompression: false,
    maxHttpBufferSize: MAX_WS_MESSAGE,
    serveClient: false,
  });
  let received = 0;
  let expected = 0;
  server.on('connection', (socket) => {
    socket.on('echo', ((payload: Buffer, ack: (reply: Buffer) => void) => ack(payload)) as never);
    socket.on('msg', (() => {
      received += 1;
      if (received === expected) socket.emit('done');
    }) as never);
    socket.on('expect', ((count: number, ack: () => void) => {
      received = 0;
      expected = count;
      ack();
    }) as never);
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const { port } = http.address() as AddressInfo;
  const client = modules.io(`http://127.0.0.1:${port}`, {
    transports: ['websocket'],
    forceNew: true,
    reconnection: false,
    maxPayload: MAX_WS_MESSAGE,
  });
  await new Promise<void>((resolve) => client.once('connect', resolve as never));
  return {
    echo: (payload) => new Promise<void>((resolve) => client.emit('echo', payload, () => resolve())),
    async stream(payload, count) {
      await new Promise<void>((resolve) => client.emit('expect', count, resolve));
      const done = new Promise<void>((resolve) => client.once('done', resolve as never));
      for (let i = 0; i < count; i++) client.emit('msg', payload);
      await done;
    },
    async close() {
      client.disconnect();
      await server.close();
    },
  };
}

async function transportPair(): Promise<Pair> {
  const transport = socketIoTransport({ maxFrameBytes: MAX_FRAME_BYTES });
  const token = 'bench-token';
  let received = 0;
  let expected = 0;
  let accepted!: (connection: Connection) => void;
  const serverSide = new Promise<Connection>((resolve) => {
    accepted = resolve;
  });
  const listener: Listener = await listenForConnections(transport, '127.0.0.1:0', {
    token,
    onConnection: (connection) => {
      connection.onRequest(async (request) => ({
        header: { type: 'echo' },
        attachments: request.attachments,
      }));
      connection.onMessage((message) => {
        if (message.header.type === 'expect') {
          received = 0;
          expected = message.header.count as number;
          return;
        }
        received += 1;
        if (received === expected) void connection.send({ header: { type: 'done' }, attachments: [] });
      });
      accepted(connection);
    },
  });
  const client = await dialConnection(transport, listener.address, { token });
  await serverSide;
  let onDone: (() => void) | undefined;
  client.onMessage((message) => {
    if (message.header.type === 'done') onDone?.();
  });
  return {
    async echo(payload) {
      await client.request({ header: { type: 'echo' }, attachments: [payload] });
    },
    async stream(payload, count) {
      const done = new Promise<void>((resolve) => {
        onDone = resolve;
      });
      await client.send({ header: { type: 'expect', count }, attachments: [] });
      const message: Envelope = { header: { type: 'data' }, attachments: [payload] };
      // Like the TCP bench: a window of sends in flight (backpressure still applies through
      // each send's promise) rather than one awaited send at a time, which the bare
      // baseline, emitting without waiting, does not pay either.
      const inFlight: Promise<void>[] = [];
      for (let i = 0; i < count; i++) {
        inFlight.push(client.send(message));
        if (inFlight.length >= SEND_WINDOW) await inFlight.shift();
      }
      await Promise.all(inFlight);
      await done;
    },
    async close() {
      await client.close();
      await listener.close();
    },
  };
}

// ---- measurement -------------------------------------------------------------------------------

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

async function echoTime(pair: Pair, payload: Uint8Array): Promise<number> {
  const start = performance.now();
  await pair.echo(payload);
  return performance.now() - start;
}

async function streamTime(pair: Pair, payload: Uint8Array, count: number): Promise<number> {
  const start = performance.now();
  await pair.stream(payload, count);
  return performance.now() - start;
}

/** Result of one size: medians in ms (RTT) and MB/s (throughput) for both sides. */
interface Row {
  readonly label: string;
  readonly rttBase: number;
  readonly rttTransport: number;
  readonly mbpsBase: number;
  readonly mbpsTransport: number;
}

async function measure(testCase: Case, baseline: Pair, transport: Pair, scale: number): Promise<Row> {
  const payload = new Uint8Array(testCase.bytes);
  for (let i = 0; i < payload.length; i += 4093) payload[i] = i & 0xff;
  const echoes = Math.max(3, Math.round(testCase.rtt * RTT_ROUNDS * scale));
  const messages = Math.max(2, Math.round(testCase.stream * scale));
  for (let i = 0; i < Math.max(2, echoes >> 4); i++) {
    await echoTime(baseline, payload);
    await echoTime(transport, payload);
  }
  const rttBase: number[] = [];
  const rttTransport: number[] = [];
  // Echoes alternate one by one (and which side goes first), so load spikes hit both alike.
  for (let i = 0; i < echoes; i++) {
    if (i % 2 === 0) {
      rttBase.push(await echoTime(baseline, payload));
      rttTransport.push(await echoTime(transport, payload));
    } else {
      rttTransport.push(await echoTime(transport, payload));
      rttBase.push(await echoTime(baseline, payload));
    }
  }
  const streamBase: number[] = [];
  const streamTransport: number[] = [];
  for (let round = 0; round < STREAM_ROUNDS; round++) {
    if (round % 2 === 0) {
      streamBase.push(await streamTime(baseline, payload, messages));
      streamTransport.push(await streamTime(transport, payload, messages));
    } else {
      streamTransport.push(await streamTime(transport, payload, messages));
      streamBase.push(await streamTime(baseline, payload, messages));
    }
  }
  const mb = (testCase.bytes * messages) / 1e6;
  return {
    label: testCase.label,
    rttBase: median(rttBase),
    rttTransport: median(rttTransport),
    mbpsBase: mb / (median(streamBase) / 1000),
    mbpsTransport: mb / (median(streamTransport) / 1000),
  };
}

function fmt(value: number, digits: number): string {
  return value.toFixed(digits).padStart(9);
}

/** Options of {@link runSocketIoBench}. */
export interface SocketIoBenchOptions {
  /** Multiplies every iteration count (`0.25` for a quick, noisier smoke run). Default 1. */
  scale?: number | undefined;
}

/**
 * Runs the Socket.IO transport benchmark and prints a table: median echo RTT (ms) and one-way
 * throughput (MB/s) for `socketIoTransport` and a bare socket.io binary echo, with the ratio
 * transport / baseline in time (target <= 1.3).
 */
export async function runSocketIoBench(options: SocketIoBenchOptions = {}): Promise<void> {
  const scale = options.scale ?? 1;
  if (!(scale > 0)) throw new RangeError(`scale must be positive, got ${String(scale)}`);
  const modules = await loadSocketIo();
  const baseline = await bareSocketIoPair(modules);
  const transport = await transportPair();
  const rows: Row[] = [];
  try {
    for (const testCase of CASES) rows.push(await measure(testCase, baseline, transport, scale));
  } finally {
    await transport.close();
    await baseline.close();
  }
  console.log('\nSocket.IO: socketIoTransport vs bare socket.io binary echo (same run, loopback)');
  console.log(
    `${'payload'.padEnd(8)} ${'rtt base'.padStart(9)} ${'rtt sio'.padStart(9)} ${'ratio'.padStart(6)}   ` +
      `${'MB/s base'.padStart(9)} ${'MB/s sio'.padStart(9)} ${'ratio'.padStart(6)}`,
  );
  let worst = 0;
  for (const row of rows) {
    const rttRatio = row.rttTransport / row.rttBase;
    const streamRatio = row.mbpsBase / row.mbpsTransport;
    worst = Math.max(worst, rttRatio, streamRatio);
    console.log(
      `${row.label.padEnd(8)} ${fmt(row.rttBase, 3)} ${fmt(row.rttTransport, 3)} ${rttRatio.toFixed(2).padStart(6)}   ` +
        `${fmt(row.mbpsBase, 1)} ${fmt(row.mbpsTransport, 1)} ${streamRatio.toFixed(2).padStart(6)}`,
    );
  }
  console.log(
    `(rtt: median ms per echo; MB/s: one-way stream; ratio: transport/baseline in time) ` +
      `worst ratio ${worst.toFixed(2)} ${worst <= TARGET_RATIO ? '<=' : '>'} target ${TARGET_RATIO}`,
  );
}
