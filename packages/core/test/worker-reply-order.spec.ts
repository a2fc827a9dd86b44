import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Connection } from '../src/connection/connection.js';
import { listenForConnections } from '../src/connection/listen-for-connections.js';
import { initBackend } from '../src/node/backend.js';
import { createBlobStore } from '../src/node/disk-blob-store.js';
import { partitionModel } from '../src/partition/partition.js';
import { stageToBlobs } from '../src/partition/stage-artifacts.js';
import { type ProtocolMessage, parseMessage, stageKey } from '../src/protocol/messages.js';
import { shipBlob } from '../src/ship/blob-shipper.js';
import { encodeTensors } from '../src/tensor/codec.js';
import { fromTfTensor } from '../src/tensor/tfjs.js';
import { MemoryNetwork, memoryTransport } from '../src/testing/memory-transport.js';
import type { Envelope, MessageHeader, Transport } from '../src/transport.js';
import { createWorker } from '../src/worker/worker.js';
import { fixture, sampleInputs } from './fixtures/models.js';

const TOKEN = 'reply-order-token';
const KEY = stageKey('residual', 'v1', 1);

let model: tf.LayersModel;
let cacheDir: string;

beforeAll(async () => {
  await initBackend();
  model = fixture('residual add block').build();
  cacheDir = await mkdtemp(join(tmpdir(), 'dinfer-reply-order-'));
});

afterAll(async () => {
  model.dispose();
  await rm(cacheDir, { recursive: true, force: true });
});

function envelope(header: ProtocolMessage, attachments: Uint8Array[] = []): Envelope {
  return { header: header as unknown as Envelope['header'], attachments };
}

/**
 * A transport whose channels log, for every inference request the worker answers, the moment
 * its reply is handed to the channel.
 */
function loggingTransport(inner: Transport, log: string[]): Transport {
  return {
    ...inner,
    async dial(address, options) {
      const channel = await inner.dial(address, options);
      /** Request id -> the infer request's `requestId`. */
      const infers = new Map<number, string>();
      const send = channel.send.bind(channel);
      const onEnvelope = channel.onEnvelope.bind(channel);
      channel.onEnvelope = (handler) =>
        onEnvelope((envelope) => {
          const { kind, id, body } = envelope.header as { kind?: string; id?: number; body?: MessageHeader };
          if (kind === 'request' && body?.type === 'infer') infers.set(id!, String(body.requestId));
          handler(envelope);
        });
      channel.send = (envelope) => {
        const { kind, id } = envelope.header as { kind?: string; id?: number };
        const requestId = kind === 'response' ? infers.get(id!) : undefined;
        if (requestId !== undefined) log.push(`reply ${requestId}`);
        return send(envelope);
      };
      return channel;
    },
  };
}

describe('worker inference queue', () => {
  it('hands each reply to the connection before it starts the next queued compute', async () => {
    const stage = partitionModel(model, [4]).stages[1]!;
    const blobs = await stageToBlobs(stage.model);
    const network = new MemoryNetwork();
    const transport = memoryTransport({ network });
    let master: Connection | undefined;
    const joined = new Promise<void>((resolve) => {
      void listenForConnections(transport, 'memory:master', {
        token: TOKEN,
        onConnection: (connection) => {
          connection.onRequest(async (request) => {
            parseMessage(request.header, 'join');
            master = connection;
            queueMicrotask(resolve);
            return envelope({ type: 'joined', workerId: 'w1', heartbeatPort: 0, heartbeatIntervalMs: 0 });
          });
        },
      });
    });
    const log: string[] = [];
    const worker = createWorker({
      transport: loggingTransport(transport, log),
      master: 'memory:master',
      token: TOKEN,
      store: createBlobStore({ dir: cacheDir }),
      capabilities: { backend: tf.getBackend(), cores: 1, memoryBytes: 2 ** 30, score: 1 },
      reconnect: false,
    });
    await worker.start();
    await joined;
    try {
      const connection = master!;
      await shipBlob(connection, blobs.topologySha256, blobs.topology);
      for (const tensor of blobs.tensors) await shipBlob(connection, tensor.sha256, tensor.bytes);
      const loaded = await connection.request(
        envelope({
          type: 'stage.load',
          key: KEY,
          topology: blobs.topologySha256,
          weights: blobs.tensors.map((t) => t.sha256),
          inputs: stage.inputs.map((s) => s.name),
          outputs: stage.outputs.map((s) => s.name),
        }),
      );
      parseMessage(loaded.header, 'stage.loaded');

      const xs = sampleInputs(stage.model, 1);
      const inputs = await Promise.all(xs.map((t, i) => fromTfTensor(t, stage.inputs[i]!.name)));
      tf.dispose(xs);
      const encoded = encodeTensors(inputs);
      // A compute is a run of layer calls: log its first one.
      const apply = tf.layers.Layer.prototype.apply;
      const spy = vi.spyOn(tf.layers.Layer.prototype, 'apply').mockImplementation(function (
        this: tf.layers.Layer,
        ...args: Parameters<tf.layers.Layer['apply']>
      ) {
        if (log.at(-1) !== 'compute') log.push('compute');
        return apply.apply(this, args);
      });
      try {
        // Three requests in one burst: the second and third wait behind the first.
        const replies = await Promise.all(
          ['r0', 'r1', 'r2'].map((requestId) =>
            connection.request(
              envelope(
                { type: 'infer', key: KEY, requestId, tensors: encoded.descriptors },
                encoded.attachments,
              ),
            ),
          ),
        );
        for (const reply of replies) parseMessage(reply.header, 'infer.result');
      } finally {
        spy.mockRestore();
      }
      expect(log).toEqual(['compute', 'reply r0', 'compute', 'reply r1', 'compute', 'reply r2']);
    } finally {
      await worker.stop();
    }
  });
});
