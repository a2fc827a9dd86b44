/**
 * One reference process of `pnpm bench:bigmodel`: computes a run of the big dense tower's
 * blocks (and its head) with plain TF.js ops, from the weights as `layout.json` places them in
 * the shard files: no dinfer reader, partitioner, loader or runtime is involved, and the
 * process holds only its own blocks' weights, so the whole model's answer is computed stage by
 * stage in processes that each fit in memory.
 *
 * Forked with an IPC channel (advanced serialization); receives one
 * {@link ReferenceRequest}, answers one {@link ReferenceReply}, and exits.
 *
 * @module
 */

import { open } from 'node:fs/promises';
import path from 'node:path';
import { initBackend } from '@dinfer/core/node';
import * as tf from '@tensorflow/tfjs';
import { type BigDenseLayout, readBigDenseLayout } from '../models/big-dense.js';
import { peakRssBytes } from './peak-rss.js';

/** What the bench asks of a reference process. */
export interface ReferenceRequest {
  readonly dir: string;
  /** Blocks `[from, to)` to compute. */
  readonly from: number;
  readonly to: number;
  /** Also apply the head (softmax) at the end. */
  readonly head: boolean;
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

/** What a reference process answers. */
export type ReferenceReply =
  | {
      readonly type: 'done';
      readonly shape: number[];
      readonly data: Float32Array;
      readonly peakRssBytes: number;
    }
  | { readonly type: 'failed'; readonly error: string };

/** Reads `[offset, offset + length)` of the shards concatenated, across file boundaries. */
async function readWeight(dir: string, layout: BigDenseLayout, name: string): Promise<Float32Array> {
  const weight = layout.weights.find((w) => w.name === name);
  if (weight === undefined) throw new Error(`layout.json has no weight ${name}`);
  const out = new Uint8Array(weight.byteLength);
  let done = 0;
  while (done < weight.byteLength) {
    const at = weight.offset + done;
    const shard = Math.floor(at / layout.shardBytes);
    const within = at - shard * layout.shardBytes;
    const length = Math.min(weight.byteLength - done, layout.shardBytes - within);
    const file = await open(path.join(dir, layout.shards[shard]!), 'r');
    try {
      const { bytesRead } = await file.read(out, done, length, within);
      if (bytesRead !== length) throw new Error(`short read of ${layout.shards[shard]}`);
    } finally {
      await file.close();
    }
    done += length;
  }
  return new Float32Array(out.buffer);
}

async function tensorOf(dir: string, layout: BigDenseLayout, name: string): Promise<tf.Tensor> {
  const weight = layout.weights.find((w) => w.name === name)!;
  return tf.tensor(await readWeight(dir, layout, name), [...weight.shape], 'float32');
}

async function compute(request: ReferenceRequest): Promise<{ shape: number[]; data: Float32Array }> {
  const layout = await readBigDenseLayout(request.dir);
  const weights = new Map<string, tf.Tensor>();
  const names = [];
  for (let b = request.from; b < request.to; b++)
    names.push(`b${b}_up/kernel`, `b${b}_up/bias`, `b${b}_down/kernel`, `b${b}_down/bias`);
  if (request.head) names.push('head/kernel', 'head/bias');
  for (const name of names) weights.set(name, await tensorOf(request.dir, layout, name));
  const w = (name: string) => weights.get(name)!;
  const y = tf.tidy(() => {
    let h = tf.tensor(request.data, [...request.shape], 'float32');
    for (let b = request.from; b < request.to; b++) {
      const up = tf.relu(tf.add(tf.matMul(h, w(`b${b}_up/kernel`)), w(`b${b}_up/bias`)));
      const down = tf.add(tf.matMul(up, w(`b${b}_down/kernel`)), w(`b${b}_down/bias`));
      h = tf.add(h, down);
    }
    return request.head ? tf.softmax(tf.add(tf.matMul(h, w('head/kernel')), w('head/bias'))) : h;
  });
  const data = (await y.data()) as Float32Array;
  const shape = [...y.shape];
  y.dispose();
  tf.dispose([...weights.values()]);
  return { shape, data };
}

function reply(message: ReferenceReply): Promise<void> {
  return new Promise((resolve) => process.send!(message, () => resolve()));
}

if (process.send !== undefined) {
  process.once('message', (request: ReferenceRequest) => {
    void (async () => {
      try {
        await initBackend({ backend: 'wasm' });
        const { shape, data } = await compute(request);
        await reply({ type: 'done', shape, data, peakRssBytes: await peakRssBytes() });
      } catch (error) {
        await reply({ type: 'failed', error: error instanceof Error ? error.message : String(error) });
      }
      process.exit(0);
    })();
  });
}
