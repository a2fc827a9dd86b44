import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DinferErrorCode, isDinferError, saveLayersModel } from '@dinfer/core';
import {
  deriveSeed,
  exampleModelCacheDir,
  loadExampleModel,
  mnistCnn,
  mnistCnnAssetPath,
  mobilenetV2,
  resnet50,
  seededRandom,
} from '@dinfer/core/models';
import { initBackend } from '@dinfer/core/node';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

function countByClass(model: tf.LayersModel): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const layer of model.layers) counts[layer.getClassName()] = (counts[layer.getClassName()] ?? 0) + 1;
  return counts;
}

/** SHA-256 of every weight's bytes, in model order. */
function weightsDigest(model: tf.LayersModel): string {
  const hash = createHash('sha256');
  for (const w of model.weights) {
    const values = w.read().dataSync() as Float32Array;
    hash.update(new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
  }
  return hash.digest('hex');
}

/** Class probabilities for a seeded random input at `size`. */
function predictSeeded(model: tf.LayersModel, size: number, seed: number): Float32Array {
  const data = seededRandom(seed).fillUniform(new Float32Array(size * size * 3), -1, 1);
  return tf.tidy(
    () => (model.predict(tf.tensor4d(data, [1, size, size, 3])) as tf.Tensor).dataSync() as Float32Array,
  );
}

function expectInvalid(fn: () => unknown, pattern: RegExp): void {
  try {
    fn();
  } catch (error) {
    expect(isDinferError(error, DinferErrorCode.INVALID_ARGUMENT)).toBe(true);
    expect((error as Error).message).toMatch(pattern);
    return;
  }
  throw new Error('expected a DinferError');
}

beforeAll(async () => {
  await initBackend();
});

describe('seeded random numbers', () => {
  it('repeats for a seed, differs between seeds and labels, and stays in range', () => {
    const a = seededRandom(5).fillUniform(new Float32Array(1000), -2, 3);
    const b = seededRandom(5).fillUniform(new Float32Array(1000), -2, 3);
    const c = seededRandom(6).fillUniform(new Float32Array(1000), -2, 3);
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
    expect(Math.min(...a)).toBeGreaterThanOrEqual(-2);
    expect(Math.max(...a)).toBeLessThan(3);
    const mean = a.reduce((s, v) => s + v, 0) / a.length;
    expect(Math.abs(mean - 0.5)).toBeLessThan(0.15);
    expect(deriveSeed(1, 'conv1/kernel')).not.toBe(deriveSeed(1, 'conv1/bias'));
    expect(deriveSeed(1, 'conv1/kernel')).not.toBe(deriveSeed(2, 'conv1/kernel'));
  });
});

describe('resnet50', () => {
  it('matches Keras ResNet50 at 224x224x3: 25,636,712 params, 177 layers, Keras names', () => {
    const model = resnet50();
    try {
      expect(model.countParams()).toBe(25_636_712);
      expect(model.layers.length).toBe(177);
      expect(model.inputs[0]!.shape).toEqual([null, 224, 224, 3]);
      expect(model.outputs[0]!.shape).toEqual([null, 1000]);
      expect(model.layers.slice(0, 7).map((l) => l.name)).toEqual([
        'input_1',
        'conv1_pad',
        'conv1_conv',
        'conv1_bn',
        'conv1_relu',
        'pool1_pad',
        'pool1_pool',
      ]);
      expect(model.layers.slice(-2).map((l) => l.name)).toEqual(['avg_pool', 'predictions']);
      expect(countByClass(model)).toEqual({
        InputLayer: 1,
        ZeroPadding2D: 2,
        Conv2D: 53,
        BatchNormalization: 53,
        Activation: 49,
        MaxPooling2D: 1,
        Add: 16,
        GlobalAveragePooling2D: 1,
        Dense: 1,
      });
      const names = new Set(model.layers.map((l) => l.name));
      for (const [stage, blocks] of [
        [2, 3],
        [3, 4],
        [4, 6],
        [5, 3],
      ] as const) {
        expect(names.has(`conv${stage}_block1_0_conv`)).toBe(true);
        expect(names.has(`conv${stage}_block2_0_conv`)).toBe(false);
        for (let b = 1; b <= blocks; b++) {
          for (const suffix of [
            '1_conv',
            '1_bn',
            '1_relu',
            '2_conv',
            '2_bn',
            '2_relu',
            '3_conv',
            '3_bn',
            'add',
            'out',
          ]) {
            expect(names.has(`conv${stage}_block${b}_${suffix}`), `conv${stage}_block${b}_${suffix}`).toBe(
              true,
            );
          }
        }
      }
      // Keras conv layers keep their bias; the 7x7 stem conv is stride 2, unpadded.
      const stem = model.getLayer('conv1_conv');
      expect(stem.weights.map((w) => w.shape)).toEqual([[7, 7, 3, 64], [64]]);
      expect(stem.getConfig()).toMatchObject({ strides: [2, 2], padding: 'valid' });
      expect(model.getLayer('conv3_block1_1_conv').getConfig()).toMatchObject({ strides: [2, 2] });
      expect(model.getLayer('conv1_bn').getConfig()).toMatchObject({ epsilon: 1.001e-5 });
      expect(model.getLayer('predictions').getConfig()).toMatchObject({ activation: 'softmax', units: 1000 });
    } finally {
      model.dispose();
    }
  });

  it('gives the same weights for the same seed and different ones for another seed', () => {
    const a = resnet50({ inputShape: [32, 32, 3], seed: 7 });
    const b = resnet50({ inputShape: [32, 32, 3], seed: 7 });
    const c = resnet50({ inputShape: [32, 32, 3], seed: 8 });
    try {
      const digest = weightsDigest(a);
      expect(weightsDigest(b)).toBe(digest);
      expect(weightsDigest(c)).not.toBe(digest);
    } finally {
      for (const m of [a, b, c]) m.dispose();
    }
  });

  it('is numerically sane: finite, normalised, neither one-hot nor uniform, input-dependent', () => {
    const model = resnet50({ inputShape: [64, 64, 3], classes: 100 });
    try {
      const p = predictSeeded(model, 64, 1);
      const q = predictSeeded(model, 64, 2);
      for (const probs of [p, q]) {
        expect(probs.length).toBe(100);
        expect(probs.every(Number.isFinite)).toBe(true);
        expect(probs.reduce((s, v) => s + v, 0)).toBeCloseTo(1, 4);
        expect(Math.max(...probs)).toBeLessThan(0.9);
        expect(Math.max(...probs)).toBeGreaterThan(2 / 100);
      }
      const change = p.reduce((s, v, i) => s + Math.abs(v - q[i]!), 0);
      expect(change).toBeGreaterThan(1e-3);
    } finally {
      model.dispose();
    }
  });

  it('rejects bad options with DINFER_ERR_INVALID_ARGUMENT', () => {
    expectInvalid(() => resnet50({ inputShape: [16, 16, 3] }), /inputShape/);
    expectInvalid(() => resnet50({ classes: 0 }), /classes/);
    expectInvalid(() => resnet50({ seed: 1.5 }), /seed/);
  });
});

describe('mobilenetV2', () => {
  it('matches Keras MobileNetV2 (alpha 1.0) at 224x224x3: 3,538,984 params, Keras names', () => {
    const model = mobilenetV2();
    try {
      expect(model.countParams()).toBe(3_538_984);
      expect(model.layers.length).toBe(156);
      expect(model.layers.slice(0, 8).map((l) => l.name)).toEqual([
        'input_1',
        'Conv1',
        'bn_Conv1',
        'Conv1_relu',
        'expanded_conv_depthwise',
        'expanded_conv_depthwise_BN',
        'expanded_conv_depthwise_relu',
        'expanded_conv_project',
      ]);
      expect(model.layers.slice(-6).map((l) => l.name)).toEqual([
        'block_16_project_BN',
        'Conv_1',
        'Conv_1_bn',
        'out_relu',
        'global_average_pooling2d',
        'predictions',
      ]);
      expect(countByClass(model)).toEqual({
        InputLayer: 1,
        Conv2D: 35,
        BatchNormalization: 52,
        ReLU: 35,
        DepthwiseConv2D: 17,
        ZeroPadding2D: 4,
        Add: 10,
        GlobalAveragePooling2D: 1,
        Dense: 1,
      });
      for (let id = 1; id <= 16; id++) {
        for (const suffix of [
          'expand',
          'expand_BN',
          'expand_relu',
          'depthwise',
          'depthwise_BN',
          'project_BN',
        ]) {
          expect(() => model.getLayer(`block_${id}_${suffix}`)).not.toThrow();
        }
      }
      for (const id of [1, 3, 6, 13]) {
        // Keras correct_pad for an even input: one row/column after, none before.
        expect(model.getLayer(`block_${id}_pad`).getConfig()).toMatchObject({
          padding: [
            [0, 1],
            [0, 1],
          ],
        });
      }
      expect(model.getLayer('block_6_depthwise').getConfig()).toMatchObject({
        strides: [2, 2],
        padding: 'valid',
      });
      expect(model.getLayer('Conv1_relu').getConfig()).toMatchObject({ maxValue: 6 });
      expect(model.getLayer('bn_Conv1').getConfig()).toMatchObject({ epsilon: 1e-3, momentum: 0.999 });
      expect(model.getLayer('Conv1').weights.length).toBe(1);
    } finally {
      model.dispose();
    }
  });

  it('uses symmetric padding before stride-2 depthwise convs on odd sizes (Keras correct_pad)', () => {
    const model = mobilenetV2({ inputShape: [33, 33, 3], classes: 10 });
    try {
      // 33 -> Conv1 (same, stride 2) -> 17: odd, so pad one on each side.
      expect(model.getLayer('block_1_pad').getConfig()).toMatchObject({
        padding: [
          [1, 1],
          [1, 1],
        ],
      });
      expect(model.countParams()).toBe(3_538_984 - 1281 * 990);
    } finally {
      model.dispose();
    }
  });

  it('gives the same weights for the same seed and different ones for another seed', () => {
    const a = mobilenetV2({ seed: 4 });
    const b = mobilenetV2({ seed: 4 });
    const c = mobilenetV2({ seed: 5 });
    try {
      expect(weightsDigest(b)).toBe(weightsDigest(a));
      expect(weightsDigest(c)).not.toBe(weightsDigest(a));
    } finally {
      for (const m of [a, b, c]) m.dispose();
    }
  });

  it('is numerically sane: finite, normalised, neither one-hot nor uniform, input-dependent', () => {
    const model = mobilenetV2({ inputShape: [64, 64, 3] });
    try {
      const p = predictSeeded(model, 64, 1);
      const q = predictSeeded(model, 64, 2);
      for (const probs of [p, q]) {
        expect(probs.every(Number.isFinite)).toBe(true);
        expect(probs.reduce((s, v) => s + v, 0)).toBeCloseTo(1, 4);
        expect(Math.max(...probs)).toBeLessThan(0.5);
        expect(Math.max(...probs)).toBeGreaterThan(2 / 1000);
      }
      const change = p.reduce((s, v, i) => s + Math.abs(v - q[i]!), 0);
      expect(change).toBeGreaterThan(1e-3);
    } finally {
      model.dispose();
    }
  });
});

describe('loadExampleModel', () => {
  let cacheDir: string;

  beforeAll(async () => {
    cacheDir = await mkdtemp(path.join(tmpdir(), 'dinfer-models-'));
  });

  afterAll(async () => {
    await rm(cacheDir, { recursive: true, force: true });
  });

  it('generates mobilenetv2 on first use, then loads the same model from disk', async () => {
    const first = await loadExampleModel('mobilenetv2', { cacheDir });
    expect(first.modelJsonPath).toBe(path.join(cacheDir, 'mobilenetv2', 'model.json'));
    expect(existsSync(first.modelJsonPath)).toBe(true);
    // No temporary directories are left behind.
    expect(await readdir(cacheDir)).toEqual(['mobilenetv2']);
    const second = await loadExampleModel('mobilenetv2', { cacheDir });
    try {
      expect(second.model).not.toBe(first.model);
      expect(second.model.countParams()).toBe(3_538_984);
      expect(weightsDigest(second.model)).toBe(weightsDigest(first.model));
      // The generated model is the default-seed mobilenetV2().
      const fresh = mobilenetV2();
      expect(weightsDigest(fresh)).toBe(weightsDigest(first.model));
      fresh.dispose();
    } finally {
      first.model.dispose();
      second.model.dispose();
    }
  });

  it('regenerates a corrupt or foreign cache entry', async () => {
    const dir = path.join(cacheDir, 'mobilenetv2');
    const shards = (await readdir(dir)).filter((f) => f.endsWith('.bin'));
    await unlink(path.join(dir, shards[0]!));
    const repaired = await loadExampleModel('mobilenetv2', { cacheDir });
    expect(repaired.model.countParams()).toBe(3_538_984);
    repaired.model.dispose();
    expect(existsSync(path.join(dir, shards[0]!))).toBe(true);

    // Another model saved under the name (no generator stamp) is replaced too.
    const other = mnistCnn();
    await rm(dir, { recursive: true });
    await saveLayersModel(other, dir);
    other.dispose();
    const replaced = await loadExampleModel('mobilenetv2', { cacheDir });
    expect(replaced.model.countParams()).toBe(3_538_984);
    replaced.model.dispose();
  });

  it('loads mnist-cnn from the shipped assets', async () => {
    const { model, modelJsonPath } = await loadExampleModel('mnist-cnn', { cacheDir });
    expect(modelJsonPath).toBe(mnistCnnAssetPath());
    expect(model.countParams()).toBe(27_562);
    model.dispose();
  });

  it('rejects an unknown name and resolves the default cache directory', async () => {
    await expect(loadExampleModel('vgg16' as 'resnet50', { cacheDir })).rejects.toMatchObject({
      code: DinferErrorCode.INVALID_ARGUMENT,
    });
    const saved = process.env.DINFER_CACHE_DIR;
    try {
      process.env.DINFER_CACHE_DIR = '/tmp/dinfer-x';
      expect(exampleModelCacheDir()).toBe('/tmp/dinfer-x/models');
      expect(exampleModelCacheDir({ cacheDir: '/tmp/y' })).toBe('/tmp/y');
      delete process.env.DINFER_CACHE_DIR;
      const root = path.resolve(import.meta.dirname, '../../..');
      expect(existsSync(path.join(root, 'pnpm-workspace.yaml'))).toBe(true);
      expect(exampleModelCacheDir()).toBe(path.join(root, '.cache', 'models'));
    } finally {
      if (saved === undefined) delete process.env.DINFER_CACHE_DIR;
      else process.env.DINFER_CACHE_DIR = saved;
    }
  });
});
