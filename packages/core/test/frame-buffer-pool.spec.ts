import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { createCoordinator } from '../src/master/coordinator.js';
import { initBackend } from '../src/node/backend.js';
import {
  allocateFrameBody,
  idleFrameBytes,
  MAX_IDLE_FRAME_BYTES,
  POOLED_FRAME_BYTES,
  releaseAttachments,
} from '../src/protocol/frame-buffer-pool.js';
import { encodeFrame, FrameDecoder } from '../src/protocol/frame-codec.js';
import { fromTfTensor } from '../src/tensor/tfjs.js';
import type { TensorData } from '../src/tensor/types.js';
import { MemoryNetwork, memoryTransport } from '../src/testing/memory-transport.js';
import { createWorker } from '../src/worker/worker.js';
import { prng, randomizeWeights } from './fixtures/models.js';

beforeAll(async () => {
  await initBackend();
});

/** One frame carrying `bytes` of attachment filled with `fill`, decoded. */
function decodeOne(decoder: FrameDecoder, bytes: number, fill: number): Uint8Array {
  const parts = encodeFrame({ header: { type: 'x' }, attachments: [new Uint8Array(bytes).fill(fill)] });
  let total = 0;
  for (const p of parts) total += p.byteLength;
  const wire = new Uint8Array(total);
  let offset = 0;
  for (const p of parts) {
    wire.set(p, offset);
    offset += p.byteLength;
  }
  // Split like a socket would.
  const out = [];
  for (let at = 0; at < wire.byteLength; at += 65536) out.push(...decoder.push(wire.slice(at, at + 65536)));
  expect(out).toHaveLength(1);
  return out[0]!.attachments[0]!;
}

describe('frame buffer pool', () => {
  it('reuses the body of a released large frame for the next frame of that size', () => {
    const decoder = new FrameDecoder();
    const size = 3 * POOLED_FRAME_BYTES;
    const first = decodeOne(decoder, size, 1);
    const idleBefore = idleFrameBytes();
    releaseAttachments([first]);
    expect(idleFrameBytes()).toBe(idleBefore + first.buffer.byteLength);
    const second = decodeOne(decoder, size, 2);
    expect(second.buffer).toBe(first.buffer);
    expect(idleFrameBytes()).toBe(idleBefore);
    expect(second.every((b) => b === 2)).toBe(true);
    // Not released: the next frame gets a body of its own.
    const third = decodeOne(decoder, size, 3);
    expect(third.buffer).not.toBe(second.buffer);
    expect(second.every((b) => b === 2)).toBe(true);
  });

  it('takes a body back once, and never small, foreign or oversupplied ones', () => {
    const body = allocateFrameBody(POOLED_FRAME_BYTES);
    const start = idleFrameBytes();
    releaseAttachments([body.subarray(8, 16), body]);
    expect(idleFrameBytes()).toBe(start + POOLED_FRAME_BYTES);
    const a = allocateFrameBody(POOLED_FRAME_BYTES);
    const b = allocateFrameBody(POOLED_FRAME_BYTES);
    expect(a.buffer).toBe(body.buffer);
    expect(b.buffer).not.toBe(a.buffer);

    releaseAttachments([allocateFrameBody(POOLED_FRAME_BYTES - 1), new Uint8Array(4 * POOLED_FRAME_BYTES)]);
    expect(idleFrameBytes()).toBe(start);

    const size = 4 * 1024 * 1024;
    const many = Array.from({ length: MAX_IDLE_FRAME_BYTES / size + 4 }, () => allocateFrameBody(size));
    releaseAttachments(many);
    expect(idleFrameBytes()).toBeLessThanOrEqual(MAX_IDLE_FRAME_BYTES);
    expect(idleFrameBytes()).toBeGreaterThan(MAX_IDLE_FRAME_BYTES - size - start);
    // Drain what this test left idle so later tests start clean.
    while (idleFrameBytes() > start) allocateFrameBody(size);
  });

  it('lets a pipeline reuse relayed activations and still answer every request exactly', async () => {
    // 128 KiB activations per example cross the cut: pooled on the in-memory wire too.
    const x = tf.input({ shape: [32, 32, 8] });
    let h = tf.layers.conv2d({ filters: 32, kernelSize: 3, padding: 'same', activation: 'relu' }).apply(x);
    h = tf.layers.conv2d({ filters: 16, kernelSize: 3, padding: 'same' }).apply(h) as tf.SymbolicTensor;
    const y = tf.layers.dense({ units: 10 }).apply(tf.layers.globalAveragePooling2d({}).apply(h));
    const model = tf.model({ inputs: x, outputs: y as tf.SymbolicTensor });
    randomizeWeights(model, 9);
    const network = new MemoryNetwork();
    const coordinator = createCoordinator({
      transport: memoryTransport({ network }),
      token: 't',
      listen: 'memory:0',
      heartbeat: { enabled: false },
      pingIntervalMs: 0,
    });
    const { address } = await coordinator.start();
    await coordinator.deploy({ name: 'm', version: '1', model, cuts: [2] });
    const workers = [0, 1].map((i) => {
      return createWorker({
        transport: memoryTransport({ network }),
        token: 't',
        master: address,
        name: `w${i}`,
        capabilities: { backend: 'wasm', cores: 1, memoryBytes: 1024 ** 3, score: 1 },
        reconnect: false,
      });
    });
    try {
      for (const w of workers) await w.start();
      await coordinator.waitUntilReady({ timeoutMs: 60_000 });
      const next = prng(21);
      const inputs: TensorData[] = Array.from({ length: 24 }, () => ({
        dtype: 'float32',
        shape: [1, 32, 32, 8],
        data: Float32Array.from({ length: 32 * 32 * 8 }, () => next() * 2 - 1),
      }));
      const idleBefore = idleFrameBytes();
      let nextIndex = 0;
      const answers: TensorData[] = new Array(inputs.length);
      await Promise.all(
        Array.from({ length: 4 }, async () => {
          while (nextIndex < inputs.length) {
            const i = nextIndex++;
            answers[i] = (await coordinator.infer('m', [inputs[i]!])).outputs[0]!;
          }
        }),
      );
      // Bodies were given back along the way (and taken again by later frames).
      expect(idleFrameBytes()).toBeGreaterThan(idleBefore);
      for (const [i, input] of inputs.entries()) {
        const t = tf.tensor(input.data, [...input.shape]);
        const want = model.predict(t) as tf.Tensor;
        const wanted = await fromTfTensor(want);
        tf.dispose([t, want]);
        const got = answers[i]!.data as Float32Array;
        for (let k = 0; k < got.length; k++) {
          expect(Math.abs(got[k]! - (wanted.data[k] as number))).toBeLessThanOrEqual(1e-5);
        }
      }
    } finally {
      await Promise.allSettled(workers.map((w) => w.stop()));
      await coordinator.stop();
      model.dispose();
    }
  });
});
