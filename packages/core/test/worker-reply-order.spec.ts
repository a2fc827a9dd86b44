import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { initBackend } from '../src/backend.js';
import { partitionModel } from '../src/partition/partition.js';
import { stageToBlobs } from '../src/partition/stage-artifacts.js';
import { parseRuntimeMessage, type RuntimeMessage, stageKey } from '../src/protocol/cluster-messages.js';
import { shipBlob } from '../src/ship/blob-shipper.js';
import { encodeTensors } from '../src/tensor/codec.js';
import { fromTfTensor } from '../src/tensor/tfjs.js';
import { MemoryNetwork, memoryTransport } from '../src/testing/memory-transport.js';
import type { Connection, Envelope, Transport } from '../src/transport.js';
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

function envelope(header: RuntimeMessage, attachments: Uint8Array[] = []): Envelope {
  return { header: header as unknown as Envelope['header'], attachments };
}

/**
 * A transport whose connections log, for every request the worker answers, the moment its
 * reply is handed back to the connection (from there it goes straight to the channel).
 */
function loggingTransport(inner: Transport, log: string[]): Transport {
  return {
    ...inner,
    async dial(address, options) {
      const connection = await inner.dial(address, options);
      const onRequest = connection.onRequest.bind(connection);
      connection.onRequest = (handler) => {
        onRequest(async (request, context) => {
          const reply = await handler(request, context);
          if (request.header.type === 'infer') log.push(`reply ${String(request.header.requestId)}`);
          return reply;
        });
      };
      return connection;
    },
  };
}

describe('worker inference queue', () => {
  it('hands each reply to the connection before it starts the next queued compute', async () => {
    const stage = partitionModel(model, [4]).stages[1]!;
    const blobs = await stageToBlobs(stage.model);
    const network = new MemoryNetwork();
    const transport = memoryTransport({ token: TOKEN, network });
    let master: Connection | undefined;
    const joined = new Promise<void>((resolve) => {
      void transport.listen('memory:master', (connection) => {
        connection.onRequest(async (request) => {
          parseRuntimeMessage(request.header, 'join');
          master = connection;
          queueMicrotask(resolve);
          return envelope({ type: 'joined', workerId: 'w1', heartbeatPort: 0, heartbeatIntervalMs: 0 });
        });
      });
    });
    const log: string[] = [];
    const worker = createWorker({
      transport: loggingTransport(transport, log),
      master: 'memory:master',
      cacheDir,
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
      parseRuntimeMessage(loaded.header, 'stage.loaded');

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
        for (const reply of replies) parseRuntimeMessage(reply.header, 'infer.result');
      } finally {
        spy.mockRestore();
      }
      expect(log).toEqual(['compute', 'reply r0', 'compute', 'reply r1', 'compute', 'reply r2']);
    } finally {
      await worker.stop();
    }
  });
});
