import { createHash } from 'node:crypto';
import dgram from 'node:dgram';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deflateRawSync } from 'node:zlib';
import * as tf from '@tensorflow/tfjs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Connection } from '../src/connection/connection.js';
import { listenForConnections } from '../src/connection/listen-for-connections.js';
import { type DinferError, DinferErrorCode, isDinferError } from '../src/errors.js';
import { initBackend } from '../src/node/backend.js';
import { createBlobStore } from '../src/node/disk-blob-store.js';
import { decodeHeartbeat } from '../src/node/heartbeat/heartbeat-packet.js';
import { createHeartbeatSender } from '../src/node/heartbeat/heartbeat-sender.js';
import { type PartitionStage, partitionModel } from '../src/partition/partition.js';
import { type HeldStageBlobs, type HeldTensorBlob, stageToBlobs } from '../src/partition/stage-artifacts.js';
import {
  type JoinMessage,
  type ProtocolMessage,
  parseMessage,
  parseMessageHeader,
  stageKey,
} from '../src/protocol/messages.js';
import type { WorkerCapabilities } from '../src/scheduler.js';
import { shipBlob } from '../src/ship/blob-shipper.js';
import { decodeTensors, encodeTensors } from '../src/tensor/codec.js';
import { fromTfTensor, toTfTensor } from '../src/tensor/tfjs.js';
import type { TensorData } from '../src/tensor/types.js';
import { MemoryNetwork, memoryTransport } from '../src/testing/memory-transport.js';
import type { Envelope, Listener, Transport } from '../src/transport.js';
import {
  addressHost,
  createWorker,
  type DinferWorker,
  type WorkerOptions,
  type WorkerState,
} from '../src/worker/worker.js';
import { expectClose } from './fixtures/compare.js';
import { fixture, sampleInputs } from './fixtures/models.js';

const TOKEN = 'worker-spec-token';
const KEY = stageKey('residual', 'v1', 1);

let stage: PartitionStage;
let blobs: HeldStageBlobs;
/** The stage's largest weight tensor: the blob the chunking tests ship piece by piece. */
let big: HeldTensorBlob;
let model: tf.LayersModel;
let capabilities: WorkerCapabilities;

beforeAll(async () => {
  await initBackend();
  model = fixture('residual add block').build();
  stage = partitionModel(model, [4]).stages[1]!;
  blobs = await stageToBlobs(stage.model);
  big = [...blobs.tensors].sort((a, b) => b.bytes.byteLength - a.bytes.byteLength)[0]!;
  capabilities = { backend: tf.getBackend(), cores: 1, memoryBytes: 2 ** 30, score: 1 };
});

afterAll(() => {
  model.dispose();
});

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'dinfer-worker-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function envelope(header: ProtocolMessage, attachments: Uint8Array[] = []): Envelope {
  return { header: header as unknown as Envelope['header'], attachments };
}

/** The error a request rejects with (fails the test when it resolves). */
async function remoteError(promise: Promise<unknown>): Promise<DinferError> {
  try {
    await promise;
  } catch (error) {
    if (isDinferError(error)) return error;
    throw error;
  }
  throw new Error('expected the request to fail');
}

const remoteCode = (error: DinferError): unknown => error.details.remoteCode;
const ticks = async (n = 2): Promise<void> => {
  for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve));
};

/** A master that only listens: it accepts joins and lets the test drive each connection. */
class FakeMaster {
  readonly joins: JoinMessage[] = [];
  readonly messages: ProtocolMessage[] = [];
  heartbeatPort = 0;
  #listener: Listener | undefined;
  #waiters: ((connection: Connection) => void)[] = [];
  #joined: Connection[] = [];

  constructor(
    readonly transport: Transport,
    readonly address: string,
  ) {}

  async listen(): Promise<void> {
    this.#listener = await listenForConnections(this.transport, this.address, {
      token: TOKEN,
      onConnection: (connection) => {
        connection.onMessage((message) => this.messages.push(parseMessageHeader(message.header)));
        connection.onRequest(async (request) => {
          const join = parseMessage(request.header, 'join');
          this.joins.push(join);
          queueMicrotask(() => {
            const waiter = this.#waiters.shift();
            if (waiter) waiter(connection);
            else this.#joined.push(connection);
          });
          return envelope({
            type: 'joined',
            workerId: `w${this.joins.length}`,
            heartbeatPort: this.heartbeatPort,
            heartbeatIntervalMs: this.heartbeatPort === 0 ? 0 : 20,
          });
        });
      },
    });
  }

  /** The next connection that joined. */
  nextJoin(): Promise<Connection> {
    const ready = this.#joined.shift();
    if (ready) return Promise.resolve(ready);
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  async close(): Promise<void> {
    await this.#listener?.close();
    this.#listener = undefined;
  }
}

async function setup(
  overrides: { cacheDir?: string } = {},
): Promise<{ master: FakeMaster; network: MemoryNetwork; transport: Transport; cacheDir: string }> {
  const network = new MemoryNetwork();
  const transport = memoryTransport({ network });
  const master = new FakeMaster(transport, 'memory:master');
  await master.listen();
  cleanups.push(() => master.close());
  return { master, network, transport, cacheDir: overrides.cacheDir ?? (await tempDir()) };
}

function worker(
  transport: Transport,
  cacheDir: string,
  overrides: Partial<WorkerOptions> = {},
): DinferWorker {
  const w = createWorker({
    transport,
    master: 'memory:master',
    token: TOKEN,
    store: createBlobStore({ dir: cacheDir }),
    capabilities,
    name: 'test-worker',
    reconnect: { initialDelayMs: 10, maxDelayMs: 50 },
    ...overrides,
  });
  cleanups.push(() => w.stop());
  return w;
}

interface SendOptions {
  readonly chunkBytes?: number;
  readonly from?: number;
  /** Stop after the chunk that reaches this many bytes (no final chunk unless it is the end). */
  readonly until?: number;
  /** Alters a chunk's raw bytes before it is deflated. */
  readonly tamper?: (raw: Uint8Array, offset: number) => Uint8Array;
}

/** Ships `bytes` in deflated chunks, as a master would; returns the last ack. */
async function sendBlob(
  connection: Connection,
  bytes: Uint8Array,
  options: SendOptions = {},
): Promise<unknown> {
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  const chunkBytes = options.chunkBytes ?? 997;
  const until = options.until ?? bytes.byteLength;
  let offset = options.from ?? 0;
  let ack: unknown;
  do {
    const end = Math.min(offset + chunkBytes, bytes.byteLength);
    let raw: Uint8Array = bytes.slice(offset, end);
    if (options.tamper) raw = options.tamper(raw, offset);
    const reply = await connection.request(
      envelope(
        {
          type: 'blob.chunk',
          sha256,
          offset,
          rawBytes: raw.byteLength,
          totalBytes: bytes.byteLength,
          compression: 'deflate',
          final: end === bytes.byteLength,
        },
        [deflateRawSync(raw)],
      ),
    );
    ack = parseMessage(reply.header, 'blob.ack');
    offset = end;
  } while (offset < until);
  return ack;
}

function stageLoad(): Envelope {
  return envelope({
    type: 'stage.load',
    key: KEY,
    topology: blobs.topologySha256,
    weights: blobs.tensors.map((t) => t.sha256),
    inputs: stage.inputs.map((s) => s.name),
    outputs: stage.outputs.map((s) => s.name),
  });
}

/** Stage inputs as named wire tensors, in the given order of the stage's inputs. */
async function stageInputs(batch: number, order: readonly number[]): Promise<TensorData[]> {
  const tensors = sampleInputs(stage.model, batch);
  const data = await Promise.all(tensors.map((t, i) => fromTfTensor(t, stage.inputs[i]!.name)));
  tf.dispose(tensors);
  return order.map((i) => data[i]!);
}

function inferRequest(tensors: readonly TensorData[], requestId = 'r1'): Envelope {
  const encoded = encodeTensors(tensors);
  return envelope({ type: 'infer', key: KEY, requestId, tensors: encoded.descriptors }, encoded.attachments);
}

/** The stage's outputs computed in this process, in the stage model's input order. */
function expectedOutputs(inputs: readonly TensorData[]): tf.Tensor[] {
  const byName = new Map(inputs.map((t) => [t.name, t]));
  const xs = stage.inputs.map((s) => toTfTensor(byName.get(s.name)!));
  const y = stage.model.predict(xs);
  tf.dispose(xs);
  return Array.isArray(y) ? y : [y];
}

async function checkInferReply(reply: Envelope, inputs: readonly TensorData[]): Promise<void> {
  const result = parseMessage(reply.header, 'infer.result');
  expect(result.computeMs).toBeGreaterThan(0);
  expect(result.queueMs).toBeGreaterThanOrEqual(0);
  const outputs = decodeTensors(result.tensors, reply.attachments, { maxBytes: 1 << 24 });
  expect(outputs.map((o) => o.name)).toEqual(stage.outputs.map((s) => s.name));
  const actual = outputs.map((o) => toTfTensor(o));
  const expected = expectedOutputs(inputs);
  expectClose(actual, expected, 1e-5);
  tf.dispose([...actual, ...expected]);
}

/** Sends every tensor blob of the stage but `except`. */
async function sendTensors(connection: Connection, except?: string): Promise<void> {
  const sent = new Set<string>(except === undefined ? [] : [except]);
  for (const tensor of blobs.tensors) {
    if (sent.has(tensor.sha256)) continue;
    sent.add(tensor.sha256);
    await sendBlob(connection, tensor.bytes);
  }
}

async function shipAndLoad(connection: Connection): Promise<void> {
  await sendBlob(connection, blobs.topology);
  await sendTensors(connection);
  parseMessage((await connection.request(stageLoad())).header, 'stage.loaded');
}

describe('createWorker', () => {
  it('joins, receives a stage in deflated chunks, loads it and runs it like the local stage', async () => {
    const { master, transport, cacheDir } = await setup();
    const w = worker(transport, cacheDir);
    const states: WorkerState[] = [];
    w.onStateChange((state) => states.push(state));
    const baseline = tf.memory().numTensors;
    await w.start();
    const connection = await master.nextJoin();
    expect(w.workerId).toBe('w1');
    expect(master.joins[0]).toEqual({
      type: 'join',
      name: 'test-worker',
      capabilities,
      blobs: [],
      heartbeats: false,
    });

    const status = parseMessage(
      (await connection.request(envelope({ type: 'blob.status', blobs: [blobs.topologySha256, big.sha256] })))
        .header,
      'blob.status.result',
    );
    expect(status).toEqual({
      type: 'blob.status.result',
      missing: [blobs.topologySha256, big.sha256],
      partial: [],
    });
    // The topology goes through the master's own shipper, the weights through small chunks.
    const shipped = await shipBlob(connection, blobs.topologySha256, blobs.topology, { chunkBytes: 4096 });
    expect(shipped.rawBytes).toBe(blobs.topology.byteLength);
    const ack = await sendBlob(connection, big.bytes, { chunkBytes: 500 });
    expect(ack).toEqual({
      type: 'blob.ack',
      sha256: big.sha256,
      receivedBytes: big.bytes.byteLength,
      complete: true,
    });
    expect(w.store.list().sort()).toEqual([blobs.topologySha256, big.sha256].sort());
    await sendTensors(connection, big.sha256);

    const loaded = parseMessage((await connection.request(stageLoad())).header, 'stage.loaded');
    expect(loaded.key).toBe(KEY);
    expect(loaded.warmupMs).toBeGreaterThan(0);
    expect(w.stages()).toEqual([KEY]);

    // Inputs sent in reverse order: the worker matches them by name.
    const inputs = await stageInputs(3, [1, 0]);
    await checkInferReply(await connection.request(inferRequest(inputs)), inputs);
    const afterFirst = tf.memory().numTensors;
    await checkInferReply(await connection.request(inferRequest(inputs, 'r2')), inputs);
    expect(tf.memory().numTensors).toBe(afterFirst);

    const pong = parseMessage(
      (await connection.request(envelope({ type: 'ping', sentAt: Date.now() }))).header,
      'pong',
    );
    expect(pong.load.queueLength).toBe(0);
    expect(pong.load.latencyMs).toBeGreaterThan(0);

    const wrongShape = inputs.map((t) => ({ ...t, shape: [t.shape[0]!, ...t.shape.slice(1).reverse()] }));
    const badShape = await remoteError(connection.request(inferRequest(wrongShape as TensorData[])));
    expect(remoteCode(badShape)).toBe(DinferErrorCode.TENSOR_INVALID);

    parseMessage((await connection.request(envelope({ type: 'stage.unload', key: KEY }))).header, 'ok');
    expect(w.stages()).toEqual([]);
    const unknown = await remoteError(connection.request(inferRequest(inputs)));
    expect(remoteCode(unknown)).toBe(DinferErrorCode.NOT_READY);
    expect(tf.memory().numTensors).toBe(baseline);

    const bogus = await remoteError(
      connection.request({ header: { type: 'infer', key: KEY }, attachments: [] }),
    );
    expect(remoteCode(bogus)).toBe(DinferErrorCode.PROTOCOL);
    await w.stop();
    expect(states).toEqual(['connecting', 'ready', 'stopped']);
  });

  it('resumes a half-shipped blob after a restart and re-announces cached blobs in join', async () => {
    const { master, transport, cacheDir } = await setup();
    const first = worker(transport, cacheDir);
    await first.start();
    let connection = await master.nextJoin();
    await sendBlob(connection, blobs.topology);
    const half = Math.floor(big.bytes.byteLength / 2);
    await sendBlob(connection, big.bytes, { chunkBytes: 100, until: half });
    const received = first.store.receivedBytes(big.sha256);
    expect(received).toBeGreaterThanOrEqual(half);
    expect(received).toBeLessThan(big.bytes.byteLength);
    await first.stop();
    expect(first.state).toBe('stopped');

    const second = worker(transport, cacheDir);
    await second.start();
    connection = await master.nextJoin();
    expect(master.joins[1]!.blobs).toEqual([blobs.topologySha256]);
    const status = parseMessage(
      (await connection.request(envelope({ type: 'blob.status', blobs: [blobs.topologySha256, big.sha256] })))
        .header,
      'blob.status.result',
    );
    expect(status.missing).toEqual([]);
    expect(status.partial).toEqual([{ sha256: big.sha256, receivedBytes: received }]);
    // A chunk at the wrong offset is refused; the one at the resume point is taken.
    const wrong = await remoteError(sendBlob(connection, big.bytes, { from: 0 }));
    expect(remoteCode(wrong)).toBe(DinferErrorCode.PROTOCOL);
    await sendBlob(connection, big.bytes, { from: received });
    await sendTensors(connection, big.sha256);
    parseMessage((await connection.request(stageLoad())).header, 'stage.loaded');
    const inputs = await stageInputs(2, [0, 1]);
    await checkInferReply(await connection.request(inferRequest(inputs)), inputs);
  });

  it('rejects a tampered blob with HASH_MISMATCH and cannot load a stage from it', async () => {
    const { master, transport, cacheDir } = await setup();
    const w = worker(transport, cacheDir);
    await w.start();
    const connection = await master.nextJoin();
    await sendBlob(connection, blobs.topology);
    const flipped = await remoteError(
      sendBlob(connection, big.bytes, {
        chunkBytes: 200,
        tamper: (raw, offset) => {
          if (offset !== 200) return raw;
          const copy = raw.slice();
          copy[10] = copy[10]! ^ 0x40;
          return copy;
        },
      }),
    );
    expect(remoteCode(flipped)).toBe(DinferErrorCode.HASH_MISMATCH);
    expect(w.store.has(big.sha256)).toBe(false);
    expect(w.store.list()).toEqual([blobs.topologySha256]);
    const status = parseMessage(
      (await connection.request(envelope({ type: 'blob.status', blobs: [big.sha256] }))).header,
      'blob.status.result',
    );
    expect(status).toEqual({ type: 'blob.status.result', missing: [big.sha256], partial: [] });
    const load = await remoteError(connection.request(stageLoad()));
    expect(remoteCode(load)).toBe(DinferErrorCode.MODEL_NOT_FOUND);
    expect(w.stages()).toEqual([]);
    // A chunk whose deflate stream expands beyond rawBytes is refused before it is stored.
    const bomb = await remoteError(
      connection.request(
        envelope(
          {
            type: 'blob.chunk',
            sha256: big.sha256,
            offset: 0,
            rawBytes: 10,
            totalBytes: big.bytes.byteLength,
            compression: 'deflate',
            final: false,
          },
          [deflateRawSync(new Uint8Array(100_000))],
        ),
      ),
    );
    expect(remoteCode(bomb)).toBe(DinferErrorCode.PROTOCOL);
    expect(w.store.receivedBytes(big.sha256)).toBe(0);
  });

  it('answers OVERLOADED beyond the queue limit and serves the rest', async () => {
    const { master, transport, cacheDir } = await setup();
    const w = worker(transport, cacheDir, { queueLimit: 1 });
    await w.start();
    const connection = await master.nextJoin();
    await shipAndLoad(connection);
    const inputs = await stageInputs(2, [0, 1]);
    const outcomes = await Promise.allSettled(
      Array.from({ length: 6 }, (_, i) => connection.request(inferRequest(inputs, `q${i}`))),
    );
    const served = outcomes.filter((o) => o.status === 'fulfilled');
    const overloaded = outcomes.filter(
      (o) => o.status === 'rejected' && remoteCode(o.reason as DinferError) === DinferErrorCode.OVERLOADED,
    );
    expect(served.length).toBeGreaterThanOrEqual(2);
    expect(overloaded.length).toBeGreaterThanOrEqual(1);
    expect(served.length + overloaded.length).toBe(6);
    for (const o of served) await checkInferReply((o as PromiseFulfilledResult<Envelope>).value, inputs);
  });

  it('drains: tells the master, refuses new work with NOT_READY, finishes queued work, then closes', async () => {
    const { master, transport, cacheDir } = await setup();
    // The worker's metrics hook starts the drain the moment the first request completes,
    // while the other two are still queued inside the worker.
    let served = 0;
    let servedAtStop = -1;
    let stateAtStop: WorkerState | undefined;
    let stopped: Promise<void> | undefined;
    let late: Promise<DinferError> | undefined;
    let connection!: Connection;
    let inputs: TensorData[] = [];
    const w = worker(transport, cacheDir, {
      metrics: {
        increment(name, labels) {
          if (name !== 'dinfer_worker_infer_total' || labels?.status !== 'ok') return;
          served += 1;
          if (stopped !== undefined) return;
          servedAtStop = served;
          stopped = w.stop({ drain: true });
          stateAtStop = w.state;
          late = remoteError(connection.request(inferRequest(inputs, 'late')));
        },
        observe() {},
        set() {},
      },
    });
    const states: WorkerState[] = [];
    w.onStateChange((state) => states.push(state));
    const baseline = tf.memory().numTensors;
    await w.start();
    connection = await master.nextJoin();
    await shipAndLoad(connection);
    inputs = await stageInputs(8, [0, 1]);
    const queued = Array.from({ length: 3 }, (_, i) => connection.request(inferRequest(inputs, `d${i}`)));
    for (const reply of await Promise.all(queued)) await checkInferReply(reply, inputs);
    expect(servedAtStop).toBe(1);
    expect(stateAtStop).toBe('draining');
    expect(served).toBe(3);
    expect(remoteCode(await late!)).toBe(DinferErrorCode.NOT_READY);
    await stopped;
    expect(master.messages).toEqual([{ type: 'drain', reason: 'worker shutting down' }]);
    expect(await connection.closed).toBeUndefined();
    expect(states).toEqual(['connecting', 'ready', 'draining', 'stopped']);
    expect(w.stages()).toEqual([]);
    expect(tf.memory().numTensors).toBe(baseline);
  });

  it('redials with backoff when the master goes away and joins again with its cache', async () => {
    const { master, transport, cacheDir } = await setup();
    const w = worker(transport, cacheDir);
    await w.start();
    const connection = await master.nextJoin();
    await shipAndLoad(connection);
    const states: WorkerState[] = [];
    w.onStateChange((state) => states.push(state));
    await master.close();
    await ticks();
    expect(w.state).toBe('connecting');
    expect(w.stages()).toEqual([]);
    await new Promise((resolve) => setTimeout(resolve, 60));
    await master.listen();
    const again = await master.nextJoin();
    const all = new Set([blobs.topologySha256, ...blobs.tensors.map((t) => t.sha256)]);
    expect([...master.joins[1]!.blobs].sort()).toEqual([...all].sort());
    await ticks();
    expect(w.state).toBe('ready');
    expect(w.workerId).toBe('w2');
    parseMessage((await again.request(stageLoad())).header, 'stage.loaded');
    const inputs = await stageInputs(1, [0, 1]);
    await checkInferReply(await again.request(inferRequest(inputs)), inputs);
    expect(states).toEqual(['connecting', 'ready']);
  });

  it('fails start on a wrong token, or with reconnect off when nobody listens', async () => {
    const { transport, cacheDir } = await setup();
    const refused = worker(transport, cacheDir, { token: 'wrong' });
    const auth = await remoteError(refused.start());
    expect(auth.code).toBe(DinferErrorCode.AUTH_FAILED);
    expect(refused.state).toBe('stopped');

    const lonely = worker(memoryTransport({ network: new MemoryNetwork() }), cacheDir, {
      reconnect: false,
    });
    const nobody = await remoteError(lonely.start());
    expect(nobody.code).toBe(DinferErrorCode.TRANSPORT_CONNECT);
  });

  it('sends UDP heartbeats signed with its session key, carrying its load, when the master asks for them', async () => {
    const { master, transport, cacheDir } = await setup();
    const socket = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise<void>((resolve) => socket.close(() => resolve())));
    master.heartbeatPort = socket.address().port;
    const packet = new Promise<Buffer>((resolve) => socket.once('message', resolve));
    const joined = master.nextJoin();
    const w = worker(transport, cacheDir, {
      token: TOKEN,
      heartbeatHost: '127.0.0.1',
      heartbeats: createHeartbeatSender,
    });
    await w.start();
    const session = (await joined).session!;
    expect(session.authenticated).toBe(true);
    const received = await packet;
    // Signed with the session key of this worker's connection, not with the cluster token.
    const decoded = decodeHeartbeat(received, () => session.key);
    expect(decodeHeartbeat(received, () => TOKEN)).toMatchObject({ ok: false, reason: 'forged' });
    expect(decoded.ok).toBe(true);
    if (decoded.ok) {
      expect(decoded.signed).toBe(true);
      expect(decoded.payload.workerId).toBe(w.workerId);
      expect(decoded.payload.load.queueLength).toBe(0);
    }
  });

  it('finds the heartbeat host in the usual address forms', () => {
    expect(addressHost('10.0.0.7:7000')).toBe('10.0.0.7');
    expect(addressHost('master.local:7000')).toBe('master.local');
    expect(addressHost('[::1]:7000')).toBe('::1');
    expect(addressHost('http://master.local:8080/socket')).toBe('master.local');
    expect(addressHost('ws://[fe80::1]:9000')).toBe('fe80::1');
    expect(addressHost('memory:master')).toBeUndefined();
  });
});
