/**
 * Hostile request bodies: tiny bodies that claim huge tensors, JSON nested millions of levels
 * deep or holding millions of values, and images many times the model's input. Each is refused
 * with a 400 that says why, before the master builds or allocates what the body claims; honest
 * requests of the same routes still answer the model's own `predict`.
 */

import { type InferenceService, localInferenceService, type ServedModel } from '@dinfer/core';
import { initBackend } from '@dinfer/core/node';
import * as tf from '@tensorflow/tfjs';
import type { FastifyInstance } from 'fastify';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHttpApi } from '../src/index.js';
import { randomizeWeights } from './fixtures/random-weights.js';

/** A service that serves `models` and never computes (the bodies must be refused before). */
function refusingService(models: ServedModel[]): InferenceService {
  return {
    models: () => models,
    health: () => ({ live: true, ready: true, degraded: false }),
    infer: () => Promise.reject(new Error('a refused body reached the service')),
  };
}

const FREE_DIMS: ServedModel = {
  name: 'free',
  version: '1',
  inputs: [{ name: 'x', shape: [null, null], dtype: 'float32' }],
  outputs: [{ name: 'y', shape: [null, 1], dtype: 'float32' }],
};

/** `levels` nested arrays, each `width` long: the first element nests, the others are 0. */
function claimingArray(levels: number, width: number): string {
  let text = '0';
  for (let i = 0; i < levels; i++) text = `[${text}${',0'.repeat(width - 1)}]`;
  return text;
}

/** The status and the JSON error body of an answer. */
function errorOf(res: { statusCode: number; body: string }): { status: number; error: string; code: string } {
  const body = JSON.parse(res.body) as { error?: string; code?: string };
  return { status: res.statusCode, error: body.error ?? '', code: body.code ?? '' };
}

/**
 * Posts `image` for the digits model and checks the best class and its score against
 * `predict` on the image resized to 28x28 greyscale here.
 */
async function expectDigitsAnswer(image: Buffer, type: string): Promise<void> {
  const res = await app.inject({
    method: 'POST',
    url: '/api/infer?model=digits',
    headers: { 'content-type': type },
    payload: image,
  });
  expect(res.statusCode).toBe(200);
  const grey = await sharp(image).resize(28, 28, { fit: 'fill' }).greyscale().raw().toBuffer();
  const pixels = Float32Array.from(grey, (p) => p / 255);
  const want = tf.tidy(() =>
    Array.from((digits.predict(tf.tensor4d(pixels, [1, 28, 28, 1])) as tf.Tensor).dataSync()),
  );
  const answer = res.json() as { predictions: { top: { index: number; score: number }[] }[] };
  const top = answer.predictions[0]!.top[0]!;
  const best = want.indexOf(Math.max(...want));
  expect(top.index).toBe(best);
  expect(Math.abs(top.score - want[best]!)).toBeLessThan(1e-4);
}

let dense: tf.LayersModel;
let digits: tf.LayersModel;
let app: FastifyInstance;
let free: FastifyInstance;

beforeAll(async () => {
  await initBackend({ backend: 'cpu' });
  const x = tf.input({ shape: [4], name: 'x' });
  const y = tf.layers.dense({ units: 3, name: 'y' }).apply(x) as tf.SymbolicTensor;
  dense = tf.model({ inputs: x, outputs: y, name: 'dense' });
  randomizeWeights(dense, 7);
  const image = tf.input({ shape: [28, 28, 1], name: 'image' });
  const flat = tf.layers.flatten().apply(image) as tf.SymbolicTensor;
  const probs = tf.layers.dense({ units: 10, activation: 'softmax' }).apply(flat) as tf.SymbolicTensor;
  digits = tf.model({ inputs: image, outputs: probs, name: 'digits' });
  randomizeWeights(digits, 8);
  const local = localInferenceService(dense, { name: 'dense' });
  const images = localInferenceService(digits, { name: 'digits' });
  app = createHttpApi({
    models: () => [...local.models(), ...images.models()],
    health: () => local.health(),
    infer: (model, inputs, options) =>
      model === 'digits' ? images.infer(model, inputs, options) : local.infer(model, inputs, options),
  });
  free = createHttpApi(refusingService([FREE_DIMS]));
});

afterAll(async () => {
  await app?.close();
  await free?.close();
  dense?.dispose();
  digits?.dispose();
});

describe('tensors claimed by small bodies', () => {
  it('refuses a 267-byte /api/infer body that claims 2^32 values, checking the shape first', async () => {
    const payload = `{"input":${claimingArray(8, 16)}}`;
    expect(payload.length).toBe(267);
    const res = await app.inject({
      method: 'POST',
      url: '/api/infer?model=dense',
      headers: { 'content-type': 'application/json' },
      payload,
    });
    const answer = errorOf(res);
    expect(answer.status).toBe(400);
    expect(answer.code).toBe('DINFER_ERR_INVALID_ARGUMENT');
    expect(answer.error).toMatch(
      /input shape \[16,16,16,16,16,16,16,16\] does not match model input \[null,4\]/,
    );
  });

  it('refuses v2 JSON data whose first elements claim more values than the body holds', async () => {
    // Declared [65536,65536] fits the model's free dims; the data is 65536 values long.
    const payload = `{"inputs":[{"name":"x","shape":[65536,65536],"datatype":"FP32","data":${claimingArray(2, 65536)}}]}`;
    const res = await free.inject({
      method: 'POST',
      url: '/v2/models/free/infer',
      headers: { 'content-type': 'application/json' },
      payload,
    });
    const answer = errorOf(res);
    expect(answer.status).toBe(400);
    expect(answer.error).toMatch(/inputs\[0\]\.data claims 4294967296 values, more than the body holds/);
  });

  it('refuses v2 binary requests whose shape outgrows the body before reading data', async () => {
    const header = JSON.stringify({
      inputs: [
        {
          name: 'x',
          shape: [65536, 65536],
          datatype: 'FP32',
          parameters: { binary_data_size: 65536 * 65536 * 4 },
        },
      ],
    });
    const res = await free.inject({
      method: 'POST',
      url: '/v2/models/free/infer',
      headers: {
        'content-type': 'application/octet-stream',
        'inference-header-content-length': String(header.length),
      },
      payload: Buffer.concat([Buffer.from(header), Buffer.alloc(16)]),
    });
    const answer = errorOf(res);
    expect(answer.status).toBe(400);
    expect(answer.error).toMatch(/only 16 bytes of binary data remain/);
  });

  it('still answers honest requests with what predict computes', async () => {
    const input = [0.5, -1, 2, 0.25];
    const res = await app.inject({
      method: 'POST',
      url: '/v2/models/dense/infer',
      payload: { inputs: [{ name: 'x', shape: [1, 4], datatype: 'FP32', data: input }] },
    });
    expect(res.statusCode).toBe(200);
    const got = (res.json() as { outputs: { data: number[] }[] }).outputs[0]!.data;
    const want = tf.tidy(() => Array.from((dense.predict(tf.tensor2d([input])) as tf.Tensor).dataSync()));
    expect(got).toHaveLength(want.length);
    for (const [i, g] of got.entries()) expect(Math.abs(g - want[i]!)).toBeLessThan(1e-5);
  });
});

describe('JSON bodies are bounded while parsing', () => {
  it('refuses a body nested a million levels deep, naming the depth limit', async () => {
    const levels = 1_000_000;
    const payload = `{"input":${'['.repeat(levels)}${']'.repeat(levels)}}`;
    const res = await app.inject({
      method: 'POST',
      url: '/api/infer?model=dense',
      headers: { 'content-type': 'application/json' },
      payload,
    });
    const answer = errorOf(res);
    expect(answer.status).toBe(400);
    expect(answer.error).toMatch(/JSON body is nested deeper than 32 levels/);
  });

  it('refuses a body with more values than the limit before parsing it', async () => {
    const small = createHttpApi(refusingService([FREE_DIMS]), { jsonMaxValues: 1000 });
    try {
      const data = Array.from({ length: 1001 }, () => 0);
      const res = await small.inject({
        method: 'POST',
        url: '/v2/models/free/infer',
        payload: { inputs: [{ name: 'x', shape: [1, 1001], datatype: 'FP32', data }] },
      });
      const answer = errorOf(res);
      expect(answer.status).toBe(400);
      expect(answer.error).toMatch(/JSON body holds more than 1000 values/);
    } finally {
      await small.close();
    }
  });

  it('bounds the JSON part of a binary request and the repository routes alike', async () => {
    const deep = `${'['.repeat(100)}${']'.repeat(100)}`;
    const binary = await free.inject({
      method: 'POST',
      url: '/v2/models/free/infer',
      headers: {
        'content-type': 'application/octet-stream',
        'inference-header-content-length': String(deep.length),
      },
      payload: deep,
    });
    expect(errorOf(binary).status).toBe(400);
    expect(errorOf(binary).error).toMatch(/nested deeper than 32 levels/);
  });

  it('counts brackets inside strings as text', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/api/infer',
      headers: { 'content-type': 'application/json' },
      payload: `{"model":"${'['.repeat(100)}","input":[1,2,3,4]}`,
    });
    expect(errorOf(res).status).toBe(404);
    expect(errorOf(res).error).toMatch(/unknown model/);
  });
});

describe('images are bounded by the model input', () => {
  it('refuses a 6300x6300 PNG for a 28x28 model from its header, before decoding', async () => {
    const png = await sharp({
      create: { width: 6300, height: 6300, channels: 3, background: { r: 40, g: 80, b: 120 } },
    })
      .png({ compressionLevel: 9 })
      .toBuffer();
    expect(png.length).toBeLessThan(256 * 1024);
    const res = await app.inject({
      method: 'POST',
      url: '/api/infer?model=digits',
      headers: { 'content-type': 'image/png' },
      payload: png,
    });
    const answer = errorOf(res);
    expect(answer.status).toBe(400);
    expect(answer.error).toMatch(
      /image is 6300x6300 = 39690000 pixels; model "digits" takes 28x28 images: send at most 1048576 pixels as PNG/,
    );
  });

  it('accepts the same size as JPEG, which decodes at a reduced size', async () => {
    const jpeg = await sharp({
      create: { width: 6300, height: 6300, channels: 3, background: { r: 40, g: 80, b: 120 } },
    })
      .jpeg()
      .toBuffer();
    await expectDigitsAnswer(jpeg, 'image/jpeg');
  });

  it('decodes an image within the bound and answers what predict computes on its pixels', async () => {
    const pixels = Buffer.alloc(56 * 56, 0);
    for (let i = 0; i < pixels.length; i++) pixels[i] = (i * 37) % 256;
    const png = await sharp(pixels, { raw: { width: 56, height: 56, channels: 1 } })
      .png()
      .toBuffer();
    await expectDigitsAnswer(png, 'image/png');
  });
});
