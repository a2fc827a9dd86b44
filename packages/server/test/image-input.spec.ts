import {
  DinferErrorCode,
  type InferenceService,
  localInferenceService,
  type ServedModel,
} from '@dinfer/core';
import { initBackend } from '@dinfer/core/node';
import * as tf from '@tensorflow/tfjs';
import type { FastifyInstance } from 'fastify';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHttpApi } from '../src/index.js';
import { imageToTensor } from '../src/preprocess/image-to-tensor.js';
import { prng, randomizeWeights } from './fixtures/random-weights.js';

/** [null,H,W,C] -> flatten -> dense(units, softmax) with deterministic weights: every pixel counts. */
function imageModel(height: number, width: number, channels: number, units: number, seed: number) {
  const input = tf.input({ shape: [height, width, channels], name: 'pixels' });
  const flat = tf.layers.flatten().apply(input) as tf.SymbolicTensor;
  const probs = tf.layers
    .dense({ units, activation: 'softmax', name: 'probs' })
    .apply(flat) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: probs });
  randomizeWeights(model, seed);
  return model;
}

/** A [null,4] model: not an image input. */
function vectorModel() {
  const input = tf.input({ shape: [4], name: 'x' });
  const out = tf.layers.dense({ units: 2, name: 'y' }).apply(input) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: out });
}

/** Serves several local services as one. */
function combined(services: readonly InferenceService[]): InferenceService {
  return {
    models: () => services.flatMap((s) => s.models()),
    infer: (name, inputs, options) => {
      const owner = services.find((s) => s.models().some((m) => m.name === name));
      if (owner === undefined) throw new Error(`no ${name}`);
      return owner.infer(name, inputs, options);
    },
    health: () => ({ live: true, ready: true, degraded: false }),
  };
}

const LABELS = Array.from({ length: 10 }, (_, i) => `class-${i}`);
const MEAN = [0.485, 0.456, 0.406];
const STD = [0.229, 0.224, 0.225];

/** A deterministic 16x16 RGB gradient, raw interleaved bytes. */
function gradient(width: number, height: number): Uint8Array {
  const out = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3;
      out[i] = Math.round((x * 255) / (width - 1));
      out[i + 1] = Math.round((y * 255) / (height - 1));
      out[i + 2] = (x * 37 + y * 11) % 256;
    }
  }
  return out;
}

const encode = (raw: Uint8Array, width: number, height: number, channels: 1 | 3 | 4 = 3) =>
  sharp(raw, { raw: { width, height, channels } });

const solid = (width: number, height: number, r: number, g: number, b: number) =>
  sharp({ create: { width, height, channels: 3, background: { r, g, b } } });

/** Normalises interleaved pixels the textbook way (no folding), for comparison. */
function normalize(pixels: ArrayLike<number>, channels: number, mean: number[], std: number[]): Float32Array {
  return Float32Array.from(pixels, (p, i) => (p / 255 - mean[i % channels]!) / std[i % channels]!);
}

/** sRGB byte -> luminance byte, through linear light (Rec. 709 weights), as libvips does. */
function srgbLuminance(r: number, g: number, b: number): number {
  const lin = (v: number) => {
    const c = v / 255;
    return c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  };
  const y = 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
  const s = y <= 0.0031308 ? 12.92 * y : 1.055 * y ** (1 / 2.4) - 0.055;
  return Math.round(s * 255);
}

function predict(model: tf.LayersModel, data: Float32Array, shape: number[]): Float32Array {
  return tf.tidy(() => (model.predict(tf.tensor(data, shape)) as tf.Tensor).dataSync() as Float32Array);
}

/** Top-5 by a full sort (independent of the server's top-k). */
function sortedTop5(row: ArrayLike<number>): number[] {
  return Array.from(row, (score, index) => ({ index, score }))
    .sort((a, b) => b.score - a.score || a.index - b.index)
    .slice(0, 5)
    .map((c) => c.index);
}

type Top = { index: number; label?: string; score: number }[];

function expectPrediction(body: { predictions: { top: Top }[] }, expected: Float32Array, tol = 1e-5): void {
  const top = body.predictions[0]!.top;
  expect(top.map((c) => c.index)).toEqual(sortedTop5(expected));
  for (const c of top) expect(Math.abs(c.score - expected[c.index]!)).toBeLessThanOrEqual(tol);
}

/** A multipart/form-data body built by hand. */
function multipart(parts: { name: string; filename?: string; type?: string; data: Uint8Array | string }[]) {
  const boundary = '----dinfer-test-boundary-7d1f';
  const chunks: Buffer[] = [];
  for (const p of parts) {
    const disposition =
      p.filename === undefined
        ? `form-data; name="${p.name}"`
        : `form-data; name="${p.name}"; filename="${p.filename}"`;
    const type = p.type === undefined ? '' : `Content-Type: ${p.type}\r\n`;
    chunks.push(Buffer.from(`--${boundary}\r\nContent-Disposition: ${disposition}\r\n${type}\r\n`));
    chunks.push(Buffer.from(p.data));
    chunks.push(Buffer.from('\r\n'));
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return {
    payload: Buffer.concat(chunks),
    headers: { 'content-type': `multipart/form-data; boundary=${boundary}` },
  };
}

let rgb: tf.LayersModel;
let grey: tf.LayersModel;
let vector: tf.LayersModel;
let app: FastifyInstance;
let pair: FastifyInstance;
let png: Buffer;
let gradientRaw: Uint8Array;

beforeAll(async () => {
  await initBackend();
  rgb = imageModel(16, 16, 3, 10, 7);
  grey = imageModel(12, 12, 1, 4, 9);
  vector = vectorModel();
  app = createHttpApi(localInferenceService(rgb, { name: 'rgb', labels: LABELS }), {
    preprocess: { rgb: { mean: MEAN, std: STD } },
    maxImagePixels: 1_000_000,
  });
  pair = createHttpApi(
    combined([
      localInferenceService(rgb, { name: 'rgb', labels: LABELS }),
      localInferenceService(grey, { name: 'grey' }),
      localInferenceService(vector, { name: 'vector' }),
    ]),
    {
      preprocess: (m: ServedModel) => (m.name === 'grey' ? { scale: 1, mean: [128], std: [64] } : undefined),
    },
  );
  gradientRaw = gradient(16, 16);
  png = await encode(gradientRaw, 16, 16).png().toBuffer();
});

afterAll(async () => {
  await app.close();
  await pair.close();
  rgb.dispose();
  grey.dispose();
  vector.dispose();
});

describe('POST /api/infer with an image', () => {
  it('answers a PNG like model.predict on the textbook-normalised pixels', async () => {
    const before = tf.memory().numTensors;
    const res = await app.inject({
      method: 'POST',
      url: '/api/infer',
      payload: png,
      headers: { 'content-type': 'image/png' },
    });
    expect(res.statusCode, res.body).toBe(200);
    expect(tf.memory().numTensors).toBe(before);
    const body = res.json();
    expect(body.model).toBe('rgb');
    expect(body.outputShape).toEqual([1, 10]);
    const expected = predict(rgb, normalize(gradientRaw, 3, MEAN, STD), [1, 16, 16, 3]);
    expectPrediction(body, expected);
    expect(body.predictions[0].top.map((c: { label: string }) => c.label)).toEqual(
      body.predictions[0].top.map((c: { index: number }) => `class-${c.index}`),
    );
  });

  it('answers a JPEG like model.predict on its decoded pixels', async () => {
    const jpeg = await encode(gradientRaw, 16, 16).jpeg({ quality: 92 }).toBuffer();
    const res = await app.inject({
      method: 'POST',
      url: '/api/infer',
      payload: jpeg,
      headers: { 'content-type': 'image/jpeg' },
    });
    expect(res.statusCode, res.body).toBe(200);
    // The reference decode: the JPEG at its own size (no resizing involved), then the textbook formula.
    const decoded = await sharp(jpeg).raw().toBuffer();
    expect(decoded.length).toBe(16 * 16 * 3);
    const expected = predict(rgb, normalize(decoded, 3, MEAN, STD), [1, 16, 16, 3]);
    expectPrediction(res.json(), expected);
  });

  it('resizes a larger image of another aspect ratio to the input size', async () => {
    const big = await solid(40, 25, 200, 40, 90).png().toBuffer();
    const res = await app.inject({
      method: 'POST',
      url: '/api/infer',
      payload: big,
      headers: { 'content-type': 'image/png' },
    });
    expect(res.statusCode, res.body).toBe(200);
    const pixels = new Uint8Array(16 * 16 * 3).map((_, i) => [200, 40, 90][i % 3]!);
    expectPrediction(res.json(), predict(rgb, normalize(pixels, 3, MEAN, STD), [1, 16, 16, 3]));
  });

  it('accepts application/octet-stream image bytes and drops alpha', async () => {
    const rgba = new Uint8Array(16 * 16 * 4);
    for (let i = 0; i < 16 * 16; i++) {
      rgba.set([gradientRaw[i * 3]!, gradientRaw[i * 3 + 1]!, gradientRaw[i * 3 + 2]!, 255 - i], i * 4);
    }
    const withAlpha = await encode(rgba, 16, 16, 4).png().toBuffer();
    const res = await app.inject({
      method: 'POST',
      url: '/api/infer',
      payload: withAlpha,
      headers: { 'content-type': 'application/octet-stream' },
    });
    expect(res.statusCode, res.body).toBe(200);
    expectPrediction(res.json(), predict(rgb, normalize(gradientRaw, 3, MEAN, STD), [1, 16, 16, 3]));
  });

  it('takes a multipart upload: the "image" field, else the first file', async () => {
    const expected = predict(rgb, normalize(gradientRaw, 3, MEAN, STD), [1, 16, 16, 3]);
    const named = multipart([
      { name: 'note', data: 'hello' },
      { name: 'other', filename: 'x.bin', type: 'application/octet-stream', data: 'not an image' },
      { name: 'image', filename: 'g.png', type: 'image/png', data: png },
    ]);
    const a = await app.inject({ method: 'POST', url: '/api/infer', ...named });
    expect(a.statusCode, a.body).toBe(200);
    expectPrediction(a.json(), expected);

    const unnamed = multipart([
      { name: 'upload', filename: 'g.png', type: 'image/png', data: png },
      { name: 'second', filename: 'y.bin', data: 'ignored' },
    ]);
    const b = await app.inject({ method: 'POST', url: '/api/infer', ...unnamed });
    expect(b.statusCode, b.body).toBe(200);
    expectPrediction(b.json(), expected);

    const none = multipart([{ name: 'note', data: 'no file here' }]);
    const c = await app.inject({ method: 'POST', url: '/api/infer', ...none });
    expect(c.statusCode).toBe(400);
    expect(c.json().error).toMatch(/multipart body has no file part/);
  });

  it('feeds a greyscale model the luminance of a colour image, with its own preprocessing', async () => {
    const colour = await solid(20, 30, 200, 30, 90).png().toBuffer();
    const luma = srgbLuminance(200, 30, 90);
    const direct = await imageToTensor(colour, await servedGrey(), { config: { scale: 1 / 255 } });
    expect(direct.tensor.shape).toEqual([1, 12, 12, 1]);
    for (const v of direct.tensor.data) expect(Math.abs(v * 255 - luma)).toBeLessThanOrEqual(1 + 1e-4);

    const res = await pair.inject({
      method: 'POST',
      url: '/api/infer?model=grey',
      payload: colour,
      headers: { 'content-type': 'image/png' },
    });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json().model).toBe('grey');
    expect(res.json().outputShape).toEqual([1, 4]);
    // The model's config is scale 1, mean 128, std 64: (pixel - 128) / 64 per pixel.
    const grey255 = Math.round(direct.tensor.data[0]! * 255);
    const expected = predict(grey, new Float32Array(144).fill((grey255 - 128) / 64), [1, 12, 12, 1]);
    expectPrediction(res.json(), expected);
  });

  it('selects the model by ?model= or the multipart "model" field, and needs one when several are served', async () => {
    const byQuery = await pair.inject({
      method: 'POST',
      url: '/api/infer?model=rgb',
      payload: png,
      headers: { 'content-type': 'image/png' },
    });
    expect(byQuery.statusCode, byQuery.body).toBe(200);
    expect(byQuery.json().model).toBe('rgb');
    // The pair's rgb model has no config: the default scale 1/255, mean 0, std 1.
    const expected = predict(rgb, normalize(gradientRaw, 3, [0, 0, 0], [1, 1, 1]), [1, 16, 16, 3]);
    expectPrediction(byQuery.json(), expected);

    const form = multipart([
      { name: 'model', data: 'rgb' },
      { name: 'image', filename: 'g.png', type: 'image/png', data: png },
    ]);
    const byField = await pair.inject({ method: 'POST', url: '/api/infer', ...form });
    expect(byField.statusCode, byField.body).toBe(200);
    expectPrediction(byField.json(), expected);

    const unnamed = await pair.inject({
      method: 'POST',
      url: '/api/infer',
      payload: png,
      headers: { 'content-type': 'image/png' },
    });
    expect(unnamed.statusCode).toBe(400);
    expect(unnamed.json().error).toMatch(/several models are served/);

    const unknown = await pair.inject({
      method: 'POST',
      url: '/api/infer?model=nope',
      payload: png,
      headers: { 'content-type': 'image/png' },
    });
    expect(unknown.statusCode).toBe(404);
  });

  it('refuses corrupt, empty, truncated, unsupported, oversized and misdirected images with 400', async () => {
    const gif = await solid(8, 8, 1, 2, 3).gif().toBuffer();
    const huge = await solid(1001, 1000, 0, 0, 0).png().toBuffer();
    const cases: [FastifyInstance, string, string, Uint8Array, RegExp][] = [
      [
        app,
        '/api/infer',
        'image/png',
        Buffer.from('definitely not a png'),
        /^cannot decode image: .*unsupported image format/,
      ],
      [app, '/api/infer', 'image/jpeg', Buffer.alloc(0), /^cannot decode image: the image is empty/],
      [app, '/api/infer', 'image/png', png.subarray(0, png.length - 30), /^cannot decode image: /],
      [
        app,
        '/api/infer',
        'application/octet-stream',
        gif,
        /format "gif" is not accepted; send jpeg, png, webp/,
      ],
      [
        app,
        '/api/infer',
        'image/png',
        huge,
        /image is 1001x1000 = 1001000 pixels, over the limit of 1000000/,
      ],
      [
        pair,
        '/api/infer?model=vector',
        'image/png',
        png,
        /input "x" has shape \[null,4\], not an image batch/,
      ],
    ];
    for (const [server, url, type, payload, message] of cases) {
      const res = await server.inject({
        method: 'POST',
        url,
        payload: Buffer.from(payload),
        headers: { 'content-type': type },
      });
      expect(res.statusCode, `${type} ${message}`).toBe(400);
      expect(res.json().error).toMatch(message);
      expect(res.json().code).toBe(DinferErrorCode.INVALID_ARGUMENT);
    }
    const gifType = await app.inject({
      method: 'POST',
      url: '/api/infer',
      payload: gif,
      headers: { 'content-type': 'image/gif' },
    });
    expect(gifType.statusCode).toBe(415);
  });

  it('caps raw and multipart images at the body limit with 413', async () => {
    const small = createHttpApi(localInferenceService(rgb, { name: 'rgb' }), { bodyLimitBytes: 4096 });
    const random = prng(3);
    const noise = new Uint8Array(64 * 64 * 3).map(() => Math.floor(random() * 256));
    const big = await encode(noise, 64, 64).png().toBuffer();
    expect(big.length).toBeGreaterThan(4096);
    const raw = await small.inject({
      method: 'POST',
      url: '/api/infer',
      payload: big,
      headers: { 'content-type': 'image/png' },
    });
    expect(raw.statusCode).toBe(413);
    const form = await small.inject({
      method: 'POST',
      url: '/api/infer',
      ...multipart([{ name: 'image', filename: 'n.png', type: 'image/png', data: big }]),
    });
    expect(form.statusCode).toBe(413);
    expect(form.json().error).toMatch(/exceeds the limit of 4096 bytes/);
    await small.close();
  });

  it('keeps JSON arrays working on the same route', async () => {
    const input = Array.from({ length: 16 }, (_, y) =>
      Array.from({ length: 16 }, (_, x) => [x / 15, y / 15, 0.5]),
    );
    const res = await app.inject({ method: 'POST', url: '/api/infer', payload: { input } });
    expect(res.statusCode, res.body).toBe(200);
    const flat = Float32Array.from(input.flat(2));
    expectPrediction(res.json(), predict(rgb, flat, [1, 16, 16, 3]));
  });
});

async function servedGrey(): Promise<ServedModel> {
  return localInferenceService(grey, { name: 'grey' }).models()[0]!;
}

describe('imageToTensor', () => {
  it('fits with contain (black bars) and cover (centre crop)', async () => {
    const model: ServedModel = {
      name: 'm',
      version: '1',
      inputs: [{ name: 'in', shape: [null, 8, 8, 3], dtype: 'float32' }],
      outputs: [{ name: 'out', shape: [null, 1], dtype: 'float32' }],
    };
    const wide = await solid(16, 8, 255, 255, 255).png().toBuffer();
    const contain = await imageToTensor(wide, model, { config: { fit: 'contain', scale: 1 } });
    // 16x8 scaled to 8x4, centred: rows 2..5 white, the others black.
    for (let y = 0; y < 8; y++) {
      const row = Array.from(contain.tensor.data.slice(y * 24, y * 24 + 24));
      expect(new Set(row), `row ${y}`).toEqual(new Set([y >= 2 && y < 6 ? 255 : 0]));
    }
    const halves = new Uint8Array(16 * 8 * 3);
    for (let y = 0; y < 8; y++)
      for (let x = 0; x < 16; x++)
        halves.fill(x < 4 || x >= 12 ? 0 : 255, (y * 16 + x) * 3, (y * 16 + x) * 3 + 3);
    const cover = await imageToTensor(await encode(halves, 16, 8).png().toBuffer(), model, {
      config: { fit: 'cover', scale: 1 },
    });
    // The centre 8x8 crop of a 16x8 image is all white.
    expect(new Set(cover.tensor.data)).toEqual(new Set([255]));
  });

  it('gives int32 inputs the raw pixels as a uint8 tensor', async () => {
    const model: ServedModel = {
      name: 'ints',
      version: '1',
      inputs: [{ name: 'in', shape: [null, 16, 16, 3], dtype: 'int32' }],
      outputs: [{ name: 'out', shape: [null, 1], dtype: 'float32' }],
    };
    const { tensor, format } = await imageToTensor(png, model);
    expect(format).toBe('png');
    expect(tensor.dtype).toBe('uint8');
    expect(Array.from(tensor.data)).toEqual(Array.from(gradientRaw));
  });

  it('checks preprocessing configs: at creation, and against the channels per request', async () => {
    const service = localInferenceService(rgb, { name: 'rgb' });
    expect(() => createHttpApi(service, { preprocess: { rgb: { std: [1, 0, 1] } } })).toThrow(
      /must not contain 0/,
    );
    expect(() => createHttpApi(service, { preprocess: { rgb: { fit: 'stretch' as 'fill' } } })).toThrow(
      /fit "stretch" must be one of fill, cover, contain/,
    );
    expect(() => createHttpApi(service, { maxImagePixels: 0 })).toThrow(/maxImagePixels 0/);
    const wrong = createHttpApi(service, { preprocess: { rgb: { mean: [0.5, 0.5] } } });
    const res = await wrong.inject({
      method: 'POST',
      url: '/api/infer',
      payload: png,
      headers: { 'content-type': 'image/png' },
    });
    expect(res.statusCode).toBe(500);
    expect(res.json().error).toMatch(/preprocess of model "rgb": mean must hold 1 or 3 numbers/);
    expect(res.json().code).toBe(DinferErrorCode.CONFIG_INVALID);
    await wrong.close();
  });
});
