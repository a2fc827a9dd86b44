import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Connection } from '../src/connection/connection.js';
import { listenForConnections } from '../src/connection/listen-for-connections.js';
import { type DinferError, DinferErrorCode, isDinferError } from '../src/errors.js';
import { initBackend } from '../src/node/backend.js';
import { createBlobStore } from '../src/node/disk-blob-store.js';
import { type StageBlobs, stageToBlobs } from '../src/partition/stage-artifacts.js';
import { type ProtocolMessage, parseMessage, stageKey } from '../src/protocol/messages.js';
import { sendBlobChunks } from '../src/ship/blob-shipper.js';
import { encodeDelta } from '../src/ship/delta.js';
import { deltaBaseLookup, shipStage } from '../src/ship/stage-shipper.js';
import { bytesOf, countingTransport, type SentRequest } from '../src/testing/counting-transport.js';
import { MemoryNetwork, memoryTransport } from '../src/testing/memory-transport.js';
import { seededRandom } from '../src/testing/seeded-random.js';
import type { Envelope } from '../src/transport.js';
import { createWorker, type DinferWorker } from '../src/worker/worker.js';
import { namedMlp, perturbedCopy } from './fixtures/sync-models.js';

const TOKEN = 'stage-shipper-token';
const caps = { backend: 'wasm', cores: 1, memoryBytes: 2 ** 30, score: 1 };

beforeAll(async () => {
  await initBackend();
});

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function envelope(header: ProtocolMessage, attachments: Uint8Array[] = []): Envelope {
  return { header: header as unknown as Envelope['header'], attachments };
}

/** A worker joined to a bare master; the test drives the master's side of the connection. */
async function joinedWorker(): Promise<{
  worker: DinferWorker;
  connection: Connection;
  sent: SentRequest[];
}> {
  const network = new MemoryNetwork();
  const counting = countingTransport(memoryTransport({ network }));
  let resolve!: (c: Connection) => void;
  const joined = new Promise<Connection>((r) => {
    resolve = r;
  });
  const listener = await listenForConnections(counting.transport, 'memory:master', {
    token: TOKEN,
    onConnection: (connection) => {
      connection.onRequest(async (request) => {
        parseMessage(request.header, 'join');
        queueMicrotask(() => resolve(connection));
        return envelope({ type: 'joined', workerId: 'w1', heartbeatPort: 0, heartbeatIntervalMs: 0 });
      });
    },
  });
  const cacheDir = await mkdtemp(join(tmpdir(), 'dinfer-shipper-'));
  const worker = createWorker({
    transport: memoryTransport({ network }),
    token: TOKEN,
    master: 'memory:master',
    store: createBlobStore({ dir: cacheDir }),
    capabilities: caps,
    reconnect: false,
  });
  cleanups.push(
    () => rm(cacheDir, { recursive: true, force: true }),
    () => listener.close(),
    () => worker.stop(),
  );
  await worker.start();
  return { worker, connection: await joined, sent: counting.sent };
}

async function loadStage(connection: Connection, blobs: StageBlobs, version: string): Promise<void> {
  const reply = await connection.request(
    envelope({
      type: 'stage.load',
      key: stageKey('m', version, 0),
      topology: blobs.topologySha256,
      weights: blobs.tensors.map((t) => t.sha256),
      inputs: ['x'],
      outputs: ['head'],
    }),
  );
  parseMessage(reply.header, 'stage.loaded');
}

async function remoteCode(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    if (isDinferError(error)) return (error as DinferError).details.remoteCode;
    throw error;
  }
  throw new Error('expected a failure');
}

describe('shipStage', () => {
  it('ships each blob once with one blob.status per stage, and nothing to a worker that holds them', async () => {
    const { worker, connection, sent } = await joinedWorker();
    const model = namedMlp(64);
    const blobs = await stageToBlobs(model);
    const held = new Set<string>();
    const first = await shipStage(connection, blobs, { held, chunkBytes: 4096 });
    expect(first.blobs).toBe(1 + blobs.tensors.length);
    expect(first.chunkedBlobs).toBe(first.blobs);
    expect(first.deltaBlobs).toBe(0);
    expect(first.totalBytes).toBe(blobs.topology.byteLength + blobs.weightBytes);
    expect(sent.filter((r) => r.type === 'blob.status')).toHaveLength(1);
    expect(first.wireBytes).toBe(bytesOf(sent, ['blob.chunk'], 'payloadBytes'));
    expect(held.size).toBe(first.blobs);
    for (const t of blobs.tensors) expect(worker.store.has(t.sha256)).toBe(true);
    await loadStage(connection, blobs, '1');

    // Known to be held: no request at all. Not known (a fresh master): one status, no chunks.
    sent.length = 0;
    const again = await shipStage(connection, blobs, { held });
    expect(again).toMatchObject({ wireBytes: 0, skippedBlobs: first.blobs });
    expect(sent).toHaveLength(0);
    const fresh = await shipStage(connection, blobs, { held: new Set() });
    expect(fresh).toMatchObject({ wireBytes: 0, skippedBlobs: first.blobs, chunkedBlobs: 0 });
    expect(sent.map((r) => r.type)).toEqual(['blob.status']);
    model.dispose();
  });

  it('sends only the changed tensor of a new version, as a delta that rebuilds bit for bit', async () => {
    const { worker, connection, sent } = await joinedWorker();
    const v1 = namedMlp(128);
    const v2 = perturbedCopy(v1, () => namedMlp(128), ['d1/kernel']);
    const b1 = await stageToBlobs(v1);
    const b2 = await stageToBlobs(v2);
    const changed = b2.tensors.filter((t, i) => t.sha256 !== b1.tensors[i]!.sha256);
    expect(changed.map((t) => t.name)).toEqual(['d1/kernel']);
    const held = new Set<string>();
    const full = await shipStage(connection, b1, { held });
    sent.length = 0;
    const update = await shipStage(connection, b2, { held, baseFor: deltaBaseLookup([b1], held) });
    expect(update.deltaBlobs).toBe(1);
    expect(update.chunkedBlobs).toBe(1); // the new model.json
    expect(update.skippedBlobs).toBe(b2.tensors.length - 1);
    const deltas = sent.filter((r) => r.type === 'blob.delta');
    expect(deltas.map((r) => [r.header.sha256, r.header.base])).toEqual([
      [changed[0]!.sha256, b1.tensors.find((t) => t.name === 'd1/kernel')!.sha256],
    ]);
    // Shared tensors are not sent again.
    const resent = sent.filter(
      (r) => r.type === 'blob.chunk' && b1.tensors.some((t) => t.sha256 === r.header.sha256),
    );
    expect(resent).toEqual([]);
    const rebuilt = await worker.store.read(changed[0]!.sha256);
    expect(Buffer.from(rebuilt).equals(Buffer.from(changed[0]!.bytes))).toBe(true);
    console.log(
      `update: ${update.wireBytes} wire bytes vs ${full.wireBytes} for the full stage; delta ${deltas[0]!.payloadBytes} of ${changed[0]!.bytes.byteLength} raw`,
    );
    expect(deltas[0]!.payloadBytes).toBeLessThan(changed[0]!.bytes.byteLength * 0.7);
    expect(update.wireBytes).toBe(bytesOf(sent, ['blob.chunk', 'blob.delta'], 'payloadBytes'));
    expect(update.wireBytes).toBeLessThan(full.wireBytes * 0.6);
    await loadStage(connection, b2, '2');
    v1.dispose();
    v2.dispose();
  });

  it('refuses a tampered delta with HASH_MISMATCH: nothing stored, the stage never loads', async () => {
    const { worker, connection } = await joinedWorker();
    const v1 = namedMlp(64);
    const v2 = perturbedCopy(v1, () => namedMlp(64), ['d2/kernel']);
    const b1 = await stageToBlobs(v1);
    const b2 = await stageToBlobs(v2);
    await shipStage(connection, b1, { held: new Set() });
    const target = b2.tensors.find((t) => t.name === 'd2/kernel')!;
    const base = b1.tensors.find((t) => t.name === 'd2/kernel')!;
    const tampered = target.bytes.slice();
    tampered[5] = tampered[5]! ^ 0x10;
    const delta = encodeDelta(base.bytes, tampered);
    const send = (payload: Uint8Array) =>
      connection.request(
        envelope(
          {
            type: 'blob.delta',
            sha256: target.sha256,
            base: base.sha256,
            totalBytes: delta.totalBytes,
            compression: delta.compression,
          },
          [payload],
        ),
      );
    expect(await remoteCode(send(delta.bytes))).toBe(DinferErrorCode.HASH_MISMATCH);
    // A payload that is not a valid deflate stream of the right size.
    expect(await remoteCode(send(delta.bytes.subarray(0, 10)))).toBe(DinferErrorCode.PROTOCOL);
    expect(worker.store.has(target.sha256)).toBe(false);
    // The rest of v2 is there; the stage still cannot load without the tensor.
    await shipStage(
      connection,
      { ...b2, tensors: b2.tensors.filter((t) => t !== target) },
      { held: new Set() },
    );
    expect(await remoteCode(loadStage(connection, b2, '2'))).toBe(DinferErrorCode.MODEL_NOT_FOUND);
    expect(worker.stages()).toEqual([]);
    v1.dispose();
    v2.dispose();
  });

  it('sends a tensor whole when the worker no longer holds the delta base', async () => {
    const { worker, connection } = await joinedWorker();
    const v1 = namedMlp(64);
    const v2 = perturbedCopy(v1, () => namedMlp(64), ['d1/kernel']);
    const b1 = await stageToBlobs(v1);
    const b2 = await stageToBlobs(v2);
    const held = new Set<string>();
    await shipStage(connection, b1, { held });
    const base = b1.tensors.find((t) => t.name === 'd1/kernel')!;
    await worker.store.delete(base.sha256); // evicted behind the master's back
    const update = await shipStage(connection, b2, { held, baseFor: deltaBaseLookup([b1], held) });
    expect(update.deltaBlobs).toBe(0);
    expect(update.chunkedBlobs).toBe(2);
    expect(held.has(base.sha256)).toBe(false);
    await loadStage(connection, b2, '2');
    v1.dispose();
    v2.dispose();
  });
});

describe('sendBlobChunks', () => {
  it('deflates chunks that shrink well, and sends the rest of a blob raw once a chunk does not', async () => {
    const { worker, connection, sent } = await joinedWorker();
    const chunkBytes = 4096;
    const noise = new Uint8Array(8 * chunkBytes);
    const random = seededRandom(3);
    for (let i = 0; i < noise.length; i++) noise[i] = Math.floor(random() * 256);
    // Incompressible first, then zeros: after the first chunk nothing more is deflated.
    const mixed = new Uint8Array(16 * chunkBytes);
    mixed.set(noise);
    const zeros = new Uint8Array(16 * chunkBytes);
    // Float weights deflate by a few percent only: not worth it after the first chunk.
    const floats = new Float32Array((16 * chunkBytes) / 4);
    for (let i = 0; i < floats.length; i++) floats[i] = (random() - 0.5) / 10;
    const weights = new Uint8Array(floats.buffer);
    for (const bytes of [mixed, zeros, weights]) {
      const sha = createHash('sha256').update(bytes).digest('hex');
      sent.length = 0;
      const result = await sendBlobChunks(connection, sha, bytes, 0, { chunkBytes });
      expect(worker.store.has(sha)).toBe(true);
      const chunks = sent.filter((r) => r.type === 'blob.chunk');
      expect(chunks).toHaveLength(16);
      const deflated = chunks.filter((r) => r.header.compression === 'deflate').length;
      if (bytes === zeros) {
        expect(deflated).toBe(16);
        expect(result.wireBytes).toBeLessThan(bytes.byteLength / 10);
      } else if (bytes === weights) {
        expect(deflated).toBeLessThanOrEqual(1);
        expect(result.wireBytes).toBeGreaterThan(bytes.byteLength * 0.98);
      } else {
        expect(deflated).toBe(0);
        expect(result.wireBytes).toBe(bytes.byteLength);
      }
    }
  });
});
