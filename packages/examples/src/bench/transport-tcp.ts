/**
 * The TCP part of `pnpm bench:transport`: `@dinfer/transport-tcp` against a bare `net` echo
 * server with a 4-byte length prefix, measured in the same run, on loopback, in one process.
 *
 * - RTT: one request carrying the payload, the reply carrying it back (echo); median of many.
 * - One-way throughput: a stream of messages (backpressure respected on both sides: the bare
 *   client waits for `drain`, the transport keeps at most 32 sends in flight), closed by a
 *   request/ack that proves every byte arrived.
 * Payloads 1 KB, 100 KB, 1.6 MB (a ResNet50 mid-network activation) and 16 MB. Ratios are
 * transport / baseline (time for RTT, baseline / transport for throughput, so > 1 is slower);
 * the targets are <= 1.3 at 1.6 MB and 16 MB. RTT samples alternate one by one and stream
 * rounds alternate too; each ratio is the median of the ratios of adjacent pairs, so machine
 * noise hits both alike. The `cpu` columns give the same ratios in process CPU time (both
 * ends of the link run in this process), which a busy machine does not distort.
 *
 * Then the tensor codec on a 1.6 MB float32 activation: bytes on the wire, encode/decode time,
 * RTT through the transport, and the error each encoding costs.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import { createServer, connect as netConnect, type Socket } from 'node:net';
import {
  type Connection,
  decodeTensors,
  dialConnection,
  type Envelope,
  encodeTensors,
  listenForConnections,
  type TensorData,
  type TensorEncoding,
} from '@dinfer/core';
import { tcpTransport } from '@dinfer/transport-tcp';

/** Payload sizes measured, with labels. */
const SIZES: ReadonlyArray<{ label: string; bytes: number; rtts: number; streamed: number }> = [
  { label: '1 KB', bytes: 1024, rtts: 2000, streamed: 5000 },
  { label: '100 KB', bytes: 100 * 1024, rtts: 500, streamed: 500 },
  { label: '1.6 MB', bytes: 1_605_632, rtts: 150, streamed: 100 },
  { label: '16 MB', bytes: 16 * 1024 * 1024, rtts: 20, streamed: 8 },
];

/** Target ratio at the sizes that matter for activations. */
const TARGET_RATIO = 1.3;
const STREAM_ROUNDS = 7;
const SEND_WINDOW = 32;

/** One row of the result. */
export interface TcpBenchRow {
  readonly size: string;
  readonly baselineRttMs: number;
  readonly transportRttMs: number;
  readonly rttRatio: number;
  /** Process CPU time (client + server side) of the transport's RTTs over the baseline's. */
  readonly rttCpuRatio: number;
  readonly baselineMBps: number;
  readonly transportMBps: number;
  readonly throughputRatio: number;
  /** Process CPU time per streamed byte, transport over baseline. */
  readonly throughputCpuRatio: number;
}

/** Options for {@link runTcpBench}. */
export interface TcpBenchOptions {
  /** Scale the iteration counts (0.25 for a quick smoke run). Default 1. */
  readonly scale?: number | undefined;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

// ---------------------------------------------------------------- baseline: bare net + u32 prefix

const KIND_ECHO = 0;
const KIND_ONE_WAY = 1;
const KIND_SYNC = 2;

/** Calls `onMessage` with each complete length-prefixed message (one concat per message). */
function lengthPrefixedReader(socket: Socket, onMessage: (body: Buffer) => void): void {
  let chunks: Buffer[] = [];
  let buffered = 0;
  let need = -1;
  socket.on('data', (chunk: Buffer) => {
    chunks.push(chunk);
    buffered += chunk.length;
    for (;;) {
      if (need < 0) {
        if (buffered < 4) return;
        if (chunks[0]!.length < 4) chunks = [Buffer.concat(chunks, buffered)];
        need = chunks[0]!.readUInt32BE(0);
      }
      if (buffered < 4 + need) return;
      const all = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, buffered);
      const body = all.subarray(4, 4 + need);
      const rest = all.subarray(4 + need);
      chunks = rest.length > 0 ? [rest] : [];
      buffered = rest.length;
      need = -1;
      onMessage(body);
    }
  });
}

function writeMessage(socket: Socket, kind: number, payload: Uint8Array): boolean {
  const head = Buffer.allocUnsafe(5);
  head.writeUInt32BE(payload.byteLength + 1, 0);
  head[4] = kind;
  socket.cork();
  socket.write(head);
  const ok = socket.write(payload);
  socket.uncork();
  return ok;
}

interface Baseline {
  readonly rtt: (payload: Uint8Array) => Promise<void>;
  readonly stream: (payload: Uint8Array, count: number) => Promise<void>;
  readonly close: () => Promise<void>;
}

async function startBaseline(): Promise<Baseline> {
  const server = createServer((socket) => {
    socket.setNoDelay(true);
    let received = 0;
    lengthPrefixedReader(socket, (body) => {
      const kind = body[0];
      if (kind === KIND_ECHO) writeMessage(socket, KIND_ECHO, body.subarray(1));
      else if (kind === KIND_ONE_WAY) received++;
      else if (kind === KIND_SYNC) {
        writeMessage(socket, KIND_SYNC, Buffer.from(String(received)));
        received = 0;
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  const socket = netConnect({ host: '127.0.0.1', port });
  await new Promise((resolve) => socket.once('connect', resolve));
  socket.setNoDelay(true);
  let waiter: ((body: Buffer) => void) | undefined;
  lengthPrefixedReader(socket, (body) => waiter?.(body));
  const reply = (): Promise<Buffer> => new Promise((resolve) => (waiter = resolve));
  return {
    async rtt(payload) {
      const answer = reply();
      writeMessage(socket, KIND_ECHO, payload);
      const body = await answer;
      if (body.length !== payload.byteLength + 1) throw new Error('baseline echo lost bytes');
    },
    async stream(payload, count) {
      for (let i = 0; i < count; i++) {
        if (!writeMessage(socket, KIND_ONE_WAY, payload))
          await new Promise((resolve) => socket.once('drain', resolve));
      }
      const answer = reply();
      writeMessage(socket, KIND_SYNC, new Uint8Array(0));
      const got = Number((await answer).subarray(1).toString());
      if (got !== count) throw new Error(`baseline stream lost messages (${got}/${count})`);
    },
    async close() {
      socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

// ---------------------------------------------------------------- the transport

interface Subject {
  readonly connection: Connection;
  readonly rtt: (payload: Uint8Array) => Promise<void>;
  readonly stream: (payload: Uint8Array, count: number) => Promise<void>;
  readonly close: () => Promise<void>;
}

async function startTransport(): Promise<Subject> {
  const transport = tcpTransport();
  const token = 'bench';
  let received = 0;
  const listener = await listenForConnections(transport, '127.0.0.1:0', {
    token,
    onConnection: (connection) => {
      connection.onMessage(() => {
        received++;
      });
      connection.onRequest(async (request): Promise<Envelope> => {
        if (request.header.type === 'sync') {
          const count = received;
          received = 0;
          return { header: { type: 'synced', count }, attachments: [] };
        }
        return { header: { ...request.header, echoed: true }, attachments: request.attachments };
      });
    },
  });
  const connection = await dialConnection(transport, listener.address, { token });
  return {
    connection,
    async rtt(payload) {
      const reply = await connection.request({ header: { type: 'echo' }, attachments: [payload] });
      if (reply.attachments[0]?.byteLength !== payload.byteLength)
        throw new Error('transport echo lost bytes');
    },
    async stream(payload, count) {
      const inFlight: Array<Promise<void>> = [];
      for (let i = 0; i < count; i++) {
        inFlight.push(connection.send({ header: { type: 'data' }, attachments: [payload] }));
        if (inFlight.length >= SEND_WINDOW) await inFlight.shift();
      }
      await Promise.all(inFlight);
      const reply = await connection.request({ header: { type: 'sync' }, attachments: [] });
      if (reply.header.count !== count)
        throw new Error(`transport stream lost messages (${String(reply.header.count)}/${count})`);
    },
    async close() {
      await connection.close();
      await listener.close();
    },
  };
}

// ---------------------------------------------------------------- measurement

type Rtt = (payload: Uint8Array) => Promise<void>;
type Stream = (payload: Uint8Array, count: number) => Promise<void>;

/** Process CPU time (user + system, both sides of the loopback link) in ms since `from`. */
function cpuMs(from: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(from);
  return (used.user + used.system) / 1000;
}

interface RttResult {
  readonly baseMs: number;
  readonly tcpMs: number;
  /** Median of the per-pair ratios tcp/base. */
  readonly ratio: number;
  /** Total CPU time tcp / base. */
  readonly cpuRatio: number;
}

/**
 * Interleaved RTT samples (base, tcp, tcp, base, ...) so load changes hit both alike. The
 * ratio is the median of the per-pair ratios, far less sensitive to a busy machine than the
 * ratio of the medians; the CPU ratio does not depend on scheduling at all.
 */
async function timeRtts(base: Rtt, tcp: Rtt, payload: Uint8Array, count: number): Promise<RttResult> {
  const samples: [number[], number[]] = [[], []];
  const cpu = [0, 0];
  const ratios: number[] = [];
  const fns = [base, tcp] as const;
  for (let i = 0; i < count; i++) {
    for (const which of i % 2 === 0 ? [0, 1] : [1, 0]) {
      const cpuStart = process.cpuUsage();
      const start = performance.now();
      await fns[which]!(payload);
      samples[which]!.push(performance.now() - start);
      cpu[which]! += cpuMs(cpuStart);
    }
    ratios.push(samples[1][i]! / samples[0][i]!);
  }
  return {
    baseMs: median(samples[0]),
    tcpMs: median(samples[1]),
    ratio: median(ratios),
    cpuRatio: cpu[1]! / cpu[0]!,
  };
}

/** Streams `count` messages through `stream`: MB/s (10^6 bytes) and the CPU ms it took. */
async function timeStream(
  stream: Stream,
  payload: Uint8Array,
  count: number,
): Promise<{ mbps: number; cpu: number }> {
  const cpuStart = process.cpuUsage();
  const start = performance.now();
  await stream(payload, count);
  const seconds = (performance.now() - start) / 1000;
  return { mbps: (payload.byteLength * count) / seconds / 1e6, cpu: cpuMs(cpuStart) };
}

function pad(text: string, width: number): string {
  return text.padStart(width);
}

/**
 * Runs the TCP benchmark, prints its tables and returns the rows. Exits nothing: the caller
 * decides what to do with the targets.
 */
export async function runTcpBench(options: TcpBenchOptions = {}): Promise<TcpBenchRow[]> {
  const scale = options.scale ?? 1;
  const rows: TcpBenchRow[] = [];
  console.log('\n== TCP transport vs bare net echo (4-byte length prefix), loopback, one process ==');
  console.log(
    `${'payload'.padEnd(8)}${pad('base RTT ms', 13)}${pad('tcp RTT ms', 12)}${pad('ratio', 7)}${pad('cpu', 6)}` +
      `${pad('base MB/s', 11)}${pad('tcp MB/s', 10)}${pad('ratio', 7)}${pad('cpu', 6)}  target (wall ratios)`,
  );
  for (const size of SIZES) {
    // A fresh pair of connections per payload size: the kernel sizes each socket's receive
    // buffer from the traffic it has seen, so connections reused from the small-message rows
    // would enter this row with different buffers on the two sides.
    const baseline = await startBaseline();
    const subject = await startTransport();
    try {
      const payload = randomBytes(size.bytes);
      const rtts = Math.max(3, Math.round(size.rtts * scale));
      const streamed = Math.max(3, Math.round(size.streamed * scale));
      // Warm up both paths (JIT, socket buffers).
      await timeRtts(baseline.rtt, subject.rtt, payload, Math.min(rtts, 5));
      const rtt = await timeRtts(baseline.rtt, subject.rtt, payload, rtts);
      const base: number[] = [];
      const tcp: number[] = [];
      const ratios: number[] = [];
      const cpu = { base: 0, tcp: 0 };
      for (let round = 0; round < STREAM_ROUNDS; round++) {
        const order = round % 2 === 0 ? (['base', 'tcp'] as const) : (['tcp', 'base'] as const);
        for (const which of order) {
          const measured = await timeStream(
            which === 'base' ? baseline.stream : subject.stream,
            payload,
            streamed,
          );
          (which === 'base' ? base : tcp).push(measured.mbps);
          cpu[which] += measured.cpu;
        }
        ratios.push(base[round]! / tcp[round]!);
      }
      const row: TcpBenchRow = {
        size: size.label,
        baselineRttMs: rtt.baseMs,
        transportRttMs: rtt.tcpMs,
        rttRatio: rtt.ratio,
        rttCpuRatio: rtt.cpuRatio,
        baselineMBps: median(base),
        transportMBps: median(tcp),
        throughputRatio: median(ratios),
        throughputCpuRatio: cpu.tcp / cpu.base,
      };
      rows.push(row);
      const targeted = size.bytes >= 1_000_000;
      const verdict = targeted
        ? row.rttRatio <= TARGET_RATIO && row.throughputRatio <= TARGET_RATIO
          ? `<= ${TARGET_RATIO} ok`
          : `<= ${TARGET_RATIO} MISSED`
        : '-';
      console.log(
        `${size.label.padEnd(8)}${pad(row.baselineRttMs.toFixed(3), 13)}${pad(row.transportRttMs.toFixed(3), 12)}` +
          `${pad(row.rttRatio.toFixed(2), 7)}${pad(row.rttCpuRatio.toFixed(2), 6)}` +
          `${pad(row.baselineMBps.toFixed(0), 11)}${pad(row.transportMBps.toFixed(0), 10)}` +
          `${pad(row.throughputRatio.toFixed(2), 7)}${pad(row.throughputCpuRatio.toFixed(2), 6)}  ${verdict}`,
      );
    } finally {
      await subject.close();
      await baseline.close();
    }
  }
  const subject = await startTransport();
  try {
    await benchTensorEncodings(subject.connection, scale);
  } finally {
    await subject.close();
  }
  return rows;
}

// ---------------------------------------------------------------- tensor encodings

/** A ReLU-like activation: about half zeros, the rest |N(0, 1)|, seeded. */
function activation(elements: number): Float32Array {
  const out = new Float32Array(elements);
  let seed = 12345;
  const uniform = (): number => {
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
    return (seed + 0.5) / 4294967296;
  };
  for (let i = 0; i < elements; i++) {
    const normal = Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
    out[i] = Math.max(normal, 0);
  }
  return out;
}

async function benchTensorEncodings(connection: Connection, scale: number): Promise<void> {
  const shape = [1, 28, 28, 512];
  const values = activation(28 * 28 * 512);
  const tensor: TensorData = { dtype: 'float32', shape, data: values };
  const runs = Math.max(3, Math.round(15 * scale));
  console.log(
    `\n== 1.6 MB float32 activation [${shape.join(', ')}] (ReLU-like, ~50% zeros) through tcpTransport ==`,
  );
  console.log('(encode/decode: codec time; RTT: the encoded bytes out and back; total: all three, median)');
  console.log(
    `${'encoding'.padEnd(16)}${pad('bytes', 10)}${pad('vs raw', 8)}${pad('encode ms', 11)}${pad('decode ms', 11)}` +
      `${pad('RTT ms', 9)}${pad('total ms', 10)}${pad('max abs err', 13)}`,
  );
  const variants: Array<{ encoding: TensorEncoding; deflate: boolean }> = [
    { encoding: 'none', deflate: false },
    { encoding: 'fp16', deflate: false },
    { encoding: 'int8', deflate: false },
    { encoding: 'none', deflate: true },
    { encoding: 'fp16', deflate: true },
    { encoding: 'int8', deflate: true },
  ];
  const rawBytes = values.byteLength;
  for (const { encoding, deflate } of variants) {
    const codec = { encoding, ...(deflate ? { deflateAboveBytes: 1024 } : {}) };
    const encodeMs: number[] = [];
    const decodeMs: number[] = [];
    const rttMs: number[] = [];
    const totalMs: number[] = [];
    let bytes = 0;
    let maxError = 0;
    // Run 0 warms up (JIT, buffers) and is not timed; it also measures the error.
    for (let run = 0; run <= runs; run++) {
      // Full path: encode, send, peer echoes the attachment, decode the reply.
      const t0 = performance.now();
      const encoded = encodeTensors([tensor], codec);
      const t1 = performance.now();
      const reply = await connection.request({
        header: { type: 'tensors', tensors: encoded.descriptors },
        attachments: encoded.attachments,
      });
      const t2 = performance.now();
      const [decoded] = decodeTensors(reply.header.tensors, reply.attachments, {
        maxBytes: 64 * 1024 * 1024,
      });
      const t3 = performance.now();
      if (run > 0) {
        encodeMs.push(t1 - t0);
        rttMs.push(t2 - t1);
        decodeMs.push(t3 - t2);
        totalMs.push(t3 - t0);
      }
      bytes = encoded.attachments.reduce((sum, a) => sum + a.byteLength, 0);
      if (run === 0) {
        const back = decoded!.data as Float32Array;
        for (let i = 0; i < values.length; i++)
          maxError = Math.max(maxError, Math.abs(back[i]! - values[i]!));
      }
    }
    console.log(
      `${`${encoding}${deflate ? '+deflate' : ''}`.padEnd(16)}${pad(String(bytes), 10)}` +
        `${pad(`${((100 * bytes) / rawBytes).toFixed(0)}%`, 8)}${pad(median(encodeMs).toFixed(2), 11)}` +
        `${pad(median(decodeMs).toFixed(2), 11)}${pad(median(rttMs).toFixed(2), 9)}` +
        `${pad(median(totalMs).toFixed(2), 10)}${pad(maxError.toExponential(2), 13)}`,
    );
  }
}
