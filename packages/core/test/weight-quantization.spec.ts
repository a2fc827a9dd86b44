import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DinferErrorCode, isDinferError } from '../src/errors.js';
import { createDeployment } from '../src/master/deployment.js';
import { initBackend } from '../src/node/backend.js';
import {
  type HeldStageBlobs,
  modelFromBlobs,
  stageToBlobs,
  tensorBlobPath,
} from '../src/partition/stage-artifacts.js';
import { quantizeWeight, type WeightQuantization } from '../src/partition/weight-quantization.js';
import { readBlob } from '../src/ship/blob-source.js';
import { fromTfTensor } from '../src/tensor/tfjs.js';
import { rejection } from '../src/testing/suite-helpers.js';
import { fixture, prng, sampleInputs } from './fixtures/models.js';

let dir: string;
beforeAll(async () => {
  await initBackend();
  dir = await mkdtemp(join(tmpdir(), 'dinfer-quant-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function values(n: number, seed: number): Float32Array {
  const next = prng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (next() - 0.3) * 0.4;
  return out;
}

/** Decodes with TF.js's own `decodeWeights`, as `tf.loadLayersModel` does. */
async function decodeWithTfjs(bytes: Uint8Array, entry: tf.io.WeightsManifestEntry): Promise<Float32Array> {
  const decoded = tf.io.decodeWeights(bytes.slice().buffer, [entry]);
  const tensor = decoded[entry.name]!;
  const data = (await tensor.data()) as Float32Array;
  tensor.dispose();
  return data;
}

describe('quantizeWeight', () => {
  it('float16: TF.js decodes every value within half a float16 ulp', async () => {
    const x = values(10_000, 1);
    x.set([0, -0, 1000, 1e-6, -3.5, 65504], 0);
    const q = quantizeWeight(x, 'float16');
    expect(q.quantization).toEqual({ dtype: 'float16' });
    expect(q.bytes.byteLength).toBe(x.length * 2);
    const y = await decodeWithTfjs(q.bytes, {
      name: 'w',
      shape: [x.length],
      dtype: 'float32',
      quantization: q.quantization,
    });
    for (let i = 0; i < x.length; i++) {
      const v = x[i]!;
      // Normal float16 keeps 11 significant bits; below 2^-14 the spacing is 2^-24.
      const bound = Math.abs(v) >= 2 ** -14 ? Math.abs(v) * 2 ** -11 : 2 ** -25;
      expect(Math.abs(y[i]! - v)).toBeLessThanOrEqual(bound);
    }
  });

  it('uint8: TF.js decodes every value within half a step, keeps 0 exact and constants exact', async () => {
    const x = values(10_000, 2);
    x[17] = 0;
    const q = quantizeWeight(x, 'uint8');
    expect(q.quantization.dtype).toBe('uint8');
    const { scale, min } = q.quantization as { scale: number; min: number };
    let lo = Number.POSITIVE_INFINITY;
    let hi = Number.NEGATIVE_INFINITY;
    for (const v of x) {
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
    expect(scale).toBeCloseTo((hi - lo) / 255, 10);
    const y = await decodeWithTfjs(q.bytes, {
      name: 'w',
      shape: [x.length],
      dtype: 'float32',
      quantization: q.quantization,
    });
    for (let i = 0; i < x.length; i++) {
      expect(Math.abs(y[i]! - x[i]!)).toBeLessThanOrEqual(scale * 0.5 + 1e-6);
    }
    expect(y[17]).toBeCloseTo(0, 6);
    expect(Math.abs(min / scale - Math.round(min / scale))).toBeLessThan(1e-9);

    const constant = new Float32Array(8).fill(0.75);
    const c = quantizeWeight(constant, 'uint8');
    expect([
      ...(await decodeWithTfjs(c.bytes, {
        name: 'c',
        shape: [8],
        dtype: 'float32',
        quantization: c.quantization,
      })),
    ]).toEqual([...constant]);
  });

  it('refuses non-finite values for uint8 and unknown quantizations', () => {
    const bad = new Float32Array([1, Number.NaN]);
    expect(() => quantizeWeight(bad, 'uint8')).toThrow(/non-finite/);
    let error: unknown;
    try {
      quantizeWeight(bad, 'int4' as WeightQuantization);
    } catch (e) {
      error = e;
    }
    expect(isDinferError(error, DinferErrorCode.INVALID_ARGUMENT)).toBe(true);
  });
});

/** Writes a stage's blobs as a directory of standard TF.js artifacts. */
async function writeArtifacts(blobs: HeldStageBlobs, name: string): Promise<string> {
  const target = join(dir, name);
  await rm(target, { recursive: true, force: true });
  await mkdir(target, { recursive: true });
  await writeFile(join(target, 'model.json'), blobs.topology);
  for (const t of blobs.tensors) await writeFile(join(target, tensorBlobPath(t.sha256)), t.bytes);
  return target;
}

/** Plain `tf.loadLayersModel` over HTTP semantics, fetching from the directory. */
function loadWithTfjs(target: string): Promise<tf.LayersModel> {
  const fetchFunc = async (url: URL | RequestInfo): Promise<Response> => {
    const file = String(url).slice('http://artifacts.test/'.length);
    return new Response(await readFile(join(target, file)), { status: 200 });
  };
  return tf.loadLayersModel(tf.io.http('http://artifacts.test/model.json', { fetchFunc }));
}

describe('quantized stage artifacts', () => {
  for (const [quantization, bytesPerValue, tolerance] of [
    ['float16', 2, 1e-3],
    ['uint8', 1, 1e-2],
  ] as const) {
    it(`${quantization}: standard TF.js artifacts that plain tf.loadLayersModel dequantizes`, async () => {
      const model = fixture('small CNN').build();
      const blobs = await stageToBlobs(model, { quantization });
      for (const t of blobs.tensors) {
        expect(t.entry.dtype).toBe('float32');
        expect(t.entry.quantization?.dtype).toBe(quantization);
      }
      expect(blobs.weightBytes * (4 / bytesPerValue)).toBe(blobs.rawWeightBytes);

      const plain = await loadWithTfjs(await writeArtifacts(blobs, quantization));
      const ours = await modelFromBlobs(
        blobs.topology,
        blobs.tensors.map((t) => t.bytes),
      );
      // The dequantized weights are what TF.js's own decoder gives for each blob.
      for (const [i, t] of blobs.tensors.entries()) {
        const expected = await decodeWithTfjs(t.bytes, t.entry);
        const actual = (await plain.weights[i]!.read().data()) as Float32Array;
        expect(Buffer.from(actual.buffer).equals(Buffer.from(expected.buffer))).toBe(true);
      }
      const inputs = sampleInputs(model, 4);
      const reference = model.predict(inputs) as tf.Tensor;
      const a = plain.predict(inputs) as tf.Tensor;
      const b = ours.predict(inputs) as tf.Tensor;
      const diff = (await tf.max(tf.abs(tf.sub(a, reference))).data())[0]!;
      console.log(`${quantization}: max |output - float32 output| = ${diff.toExponential(2)}`);
      expect(diff).toBeLessThan(tolerance);
      expect(diff).toBeGreaterThan(0);
      expect(Buffer.from(await a.data()).equals(Buffer.from(await b.data()))).toBe(true);
      tf.dispose([...inputs, reference, a, b]);
      plain.dispose();
      ours.dispose();
      model.dispose();
    });
  }

  it('createDeployment quantizes per the spec and refuses an unknown quantization', async () => {
    const model = fixture('small CNN').build();
    const deployment = await createDeployment({ name: 'q', model, cuts: [], weightQuantization: 'float16' });
    expect(deployment.stages[0]!.blobs.tensors.every((t) => t.entry.quantization?.dtype === 'float16')).toBe(
      true,
    );
    const error = await rejection(
      createDeployment({ name: 'q', model, cuts: [], weightQuantization: 'int4' as WeightQuantization }),
    );
    expect(isDinferError(error, DinferErrorCode.INVALID_ARGUMENT)).toBe(true);
    model.dispose();
  });

  for (const quantization of ['float16', 'uint8'] as const) {
    it(`the master computes exactly what a worker loading the ${quantization} blobs computes`, async () => {
      const model = fixture('small CNN').build();
      const original = model.getWeights().map((w) => w.dataSync().slice());
      const deployment = await createDeployment({
        name: 'q',
        model,
        cuts: [],
        weightQuantization: quantization,
      });
      const stage = deployment.stages[0]!;
      // What a worker builds from the shipped bytes, dequantized by TF.js itself.
      const loaded = await modelFromBlobs(
        stage.blobs.topology,
        await Promise.all(stage.blobs.tensors.map(readBlob)),
      );
      const [x] = sampleInputs(model, 2, 3);
      const data = await fromTfTensor(x!);
      const local = await deployment.runLocal(0, [data]);
      const remote = loaded.predict(x!) as tf.Tensor;
      expect(Array.from(local[0]!.data as Float32Array)).toEqual(Array.from(remote.dataSync()));
      // And the rounding did change the weights (it is not a no-op).
      const changed = model.getWeights().some((w, i) => w.dataSync().some((v, k) => v !== original[i]![k]));
      expect(changed).toBe(true);
      tf.dispose([x!, remote]);
      loaded.dispose();
      model.dispose();
    });
  }
});
