import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { analyzeModelJson, loadLayersModel, openModelArtifacts } from '@dinfer/core';
import { initBackend } from '@dinfer/core/node';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readBigDenseLayout, writeBigDenseModel } from '../src/models/big-dense.js';

let root: string;
beforeAll(async () => {
  await initBackend();
  root = await mkdtemp(path.join(tmpdir(), 'dinfer-big-dense-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const spec = { width: 24, blocks: 3, classes: 5, seed: 9, shardBytes: 1000 };

describe('writeBigDenseModel', () => {
  it('writes standard TF.js artifacts, weights where layout.json says, that compute the tower', async () => {
    const dir = path.join(root, 'tower');
    const { layout, generated } = await writeBigDenseModel(dir, spec);
    expect(generated).toBe(true);
    expect(layout.shards.length).toBeGreaterThan(1); // weights straddle shard files
    const model = await loadLayersModel(path.join(dir, 'model.json'));
    expect(model.layers.map((l) => l.name)).toEqual([
      'x',
      ...Array.from({ length: spec.blocks }, (_, b) => [`b${b}_up`, `b${b}_down`, `b${b}_add`]).flat(),
      'head',
    ]);
    // Each weight, read by its place in the concatenated shards, is the model's.
    const shards = Buffer.concat(await Promise.all(layout.shards.map((s) => readFile(path.join(dir, s)))));
    const values = new Map(
      layout.weights.map((w) => [
        w.name,
        new Float32Array(new Uint8Array(shards.subarray(w.offset, w.offset + w.byteLength)).buffer),
      ]),
    );
    for (const variable of model.weights) {
      expect([...(variable.read().dataSync() as Float32Array)]).toEqual([
        ...values.get(variable.originalName)!,
      ]);
    }
    const x = tf.randomUniform([2, spec.width], -1, 1, 'float32', 4);
    const w = (name: string) => {
      const weight = layout.weights.find((l) => l.name === name)!;
      return tf.tensor(values.get(name)!, [...weight.shape]);
    };
    const [got, want] = tf.tidy(() => {
      let h = x;
      for (let b = 0; b < spec.blocks; b++) {
        const up = tf.relu(tf.add(tf.matMul(h, w(`b${b}_up/kernel`)), w(`b${b}_up/bias`)));
        h = tf.add(h, tf.add(tf.matMul(up, w(`b${b}_down/kernel`)), w(`b${b}_down/bias`)));
      }
      return [
        model.predict(x) as tf.Tensor,
        tf.softmax(tf.add(tf.matMul(h, w('head/kernel')), w('head/bias'))),
      ];
    });
    expect(tf.max(tf.abs(tf.sub(got!, want!))).dataSync()[0]).toBeLessThan(1e-6);
    const source = await openModelArtifacts(dir);
    expect(analyzeModelJson(source.json, source.path).totalWeightBytes).toBe(layout.weightBytes);
    tf.dispose([x, got!, want!]);
    model.dispose();
  });

  it('gives the same bytes for the same spec, and reuses what is on disk', async () => {
    const a = path.join(root, 'a');
    await writeBigDenseModel(a, spec);
    const again = await writeBigDenseModel(a, spec);
    expect(again.generated).toBe(false);
    const b = path.join(root, 'b');
    await writeBigDenseModel(b, spec);
    const layout = await readBigDenseLayout(a);
    for (const shard of layout.shards) {
      expect((await readFile(path.join(a, shard))).equals(await readFile(path.join(b, shard)))).toBe(true);
    }
    const other = await writeBigDenseModel(a, { ...spec, seed: 10 });
    expect(other.generated).toBe(true);
  });
});
