import { Readable } from 'node:stream';
import { type InferenceService, localInferenceService, type TensorData } from '@dinfer/core';
import { initBackend } from '@dinfer/core/node';
import { idleFrameBytes } from '@dinfer/core/testing';
import * as tf from '@tensorflow/tfjs';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readBinaryTensor, splitBinaryBody, tensorBytes } from '../src/http/kserve-binary.js';
import { createHttpApi } from '../src/index.js';
import { prng, randomizeWeights } from './fixtures/random-weights.js';

/** [null,8,8,3] -> flatten -> probs (softmax 5) and raw (linear 2). */
function imageModel(): tf.LayersModel {
  const input = tf.input({ shape: [8, 8, 3], name: 'image' });
  const flat = tf.layers.flatten().apply(input) as tf.SymbolicTensor;
  const probs = tf.layers
    .dense({ units: 5, activation: 'softmax', name: 'probs' })
    .apply(flat) as tf.SymbolicTensor;
  const raw = tf.layers.dense({ units: 2, name: 'raw' }).apply(flat) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: [probs, raw] });
  randomizeWeights(model, 21);
  return model;
}

/** Two inputs (float32 features, int32 ids) and one output. */
function multiModel(): tf.LayersModel {
  const x = tf.input({ shape: [4], name: 'x' });
  const ids = tf.input({ shape: [3], dtype: 'int32', name: 'ids' });
  const embedded = tf.layers.embedding({ inputDim: 10, outputDim: 2 }).apply(ids) as tf.SymbolicTensor;
  const flat = tf.layers.flatten().apply(embedded) as tf.SymbolicTensor;
  const joined = tf.layers.concatenate().apply([x, flat]) as tf.SymbolicTensor;
  const out = tf.layers.dense({ units: 3, name: 'out' }).apply(joined) as tf.SymbolicTensor;
  const model = tf.model({ inputs: [x, ids], outputs: out });
  randomizeWeights(model, 22);
  return model;
}

const bytesOf = (a: Float32Array | Int32Array | Uint8Array) =>
  Buffer.from(a.buffer, a.byteOffset, a.byteLength);

/** A binary request: JSON header then the chunks, with the headers the extension needs. */
function binaryRequest(json: unknown, chunks: Uint8Array[], headerLength?: number | string) {
  const header = Buffer.from(JSON.stringify(json));
  return {
    payload: Buffer.concat([header, ...chunks]),
    headers: {
      'content-type': 'application/octet-stream',
      'inference-header-content-length': String(headerLength ?? header.length),
    },
  };
}

/** Splits a binary answer into its JSON and the Float32 data of each binary output. */
function readAnswer(res: LightMyRequestResponse) {
  expect(res.headers['content-type']).toBe('application/octet-stream');
  const n = Number(res.headers['inference-header-content-length']);
  const body = res.rawPayload;
  const json = JSON.parse(body.subarray(0, n).toString('utf8'));
  let offset = n;
  const data: Record<string, Float32Array> = {};
  for (const o of json.outputs) {
    const size = o.parameters?.binary_data_size;
    if (size === undefined) continue;
    const copy = new Uint8Array(body.subarray(offset, offset + size));
    data[o.name] = new Float32Array(copy.buffer);
    offset += size;
  }
  expect(offset).toBe(body.length);
  return { json, data };
}

let image: tf.LayersModel;
let multi: tf.LayersModel;
let app: FastifyInstance;
let multiApp: FastifyInstance;
const next = prng(5);
const pixels = Float32Array.from({ length: 2 * 8 * 8 * 3 }, () => Math.round(next() * 1000) / 1000);
const imageInput = { name: 'image', shape: [2, 8, 8, 3], datatype: 'FP32' };

beforeAll(async () => {
  await initBackend();
  image = imageModel();
  multi = multiModel();
  app = createHttpApi(localInferenceService(image, { name: 'img', version: '3' }), {
    bodyLimitBytes: 64 * 1024,
  });
  multiApp = createHttpApi(localInferenceService(multi, { name: 'multi' }));
});

afterAll(async () => {
  await app.close();
  await multiApp.close();
  image.dispose();
  multi.dispose();
});

describe('KServe v2 binary tensor data', () => {
  it('takes a binary input and answers binary outputs equal to the JSON answer', async () => {
    const json = await app.inject({
      method: 'POST',
      url: '/v2/models/img/infer',
      payload: { inputs: [{ ...imageInput, data: Array.from(pixels) }] },
    });
    expect(json.statusCode, json.body).toBe(200);
    const before = tf.memory().numTensors;
    const res = await app.inject({
      method: 'POST',
      url: '/v2/models/img/infer',
      ...binaryRequest(
        {
          id: 'r1',
          inputs: [{ ...imageInput, parameters: { binary_data_size: pixels.byteLength } }],
          parameters: { binary_data_output: true },
        },
        [bytesOf(pixels)],
      ),
    });
    expect(res.statusCode, res.body).toBe(200);
    expect(tf.memory().numTensors).toBe(before);
    const { json: header, data } = readAnswer(res);
    expect(header.id).toBe('r1');
    expect(header.model_version).toBe('3');
    expect(header.outputs.map((o: { name: string }) => o.name)).toEqual(['probs', 'raw']);
    expect(header.outputs[0]).toEqual({
      name: 'probs',
      shape: [2, 5],
      datatype: 'FP32',
      parameters: { binary_data_size: 40 },
    });
    for (const o of json.json().outputs) expect(Array.from(data[o.name]!)).toEqual(o.data);
    // And both equal model.predict on the same values.
    const expected = tf.tidy(() =>
      (image.predict(tf.tensor(pixels, [2, 8, 8, 3])) as tf.Tensor[]).map((t) => t.dataSync()),
    );
    expect(Array.from(data.probs!)).toEqual(Array.from(expected[0]!));
    expect(Array.from(data.raw!)).toEqual(Array.from(expected[1]!));
  });

  it('mixes JSON and binary per input and per output, on the versioned route too', async () => {
    const x = new Float32Array([0.5, -1, 2, 0.25]);
    const ids = new Int32Array([1, 7, 3]);
    const plainJson = {
      inputs: [
        { name: 'x', shape: [1, 4], datatype: 'FP32', data: Array.from(x) },
        { name: 'ids', shape: [1, 3], datatype: 'INT32', data: Array.from(ids) },
      ],
    };
    const reference = await multiApp.inject({
      method: 'POST',
      url: '/v2/models/multi/infer',
      payload: plainJson,
    });
    expect(reference.statusCode, reference.body).toBe(200);
    const expected = reference.json().outputs[0].data as number[];

    const int32 = await multiApp.inject({
      method: 'POST',
      url: '/v2/models/multi/versions/1/infer',
      ...binaryRequest(
        {
          inputs: [
            { name: 'x', shape: [1, 4], datatype: 'FP32', data: Array.from(x) },
            { name: 'ids', shape: [1, 3], datatype: 'INT32', parameters: { binary_data_size: 12 } },
          ],
        },
        [bytesOf(ids)],
      ),
    });
    expect(int32.statusCode, int32.body).toBe(200);
    expect(int32.headers['content-type']).toMatch(/^application\/json/);
    expect(int32.json().outputs[0].data).toEqual(expected);

    // UINT8 ids feed the int32 input; binary_data_output false is overridden per output.
    const uint8 = await multiApp.inject({
      method: 'POST',
      url: '/v2/models/multi/infer',
      ...binaryRequest(
        {
          inputs: [
            { name: 'ids', shape: [1, 3], datatype: 'UINT8', parameters: { binary_data_size: 3 } },
            { name: 'x', shape: [1, 4], datatype: 'FP32', parameters: { binary_data_size: 16 } },
          ],
          outputs: [{ name: 'out', parameters: { binary_data: true } }],
          parameters: { binary_data_output: false },
        },
        [Uint8Array.from(ids), bytesOf(x)],
      ),
    });
    expect(uint8.statusCode, uint8.body).toBe(200);
    expect(Array.from(readAnswer(uint8).data.out!)).toEqual(expected);

    // A JSON request may ask for binary outputs too.
    const jsonAsks = await multiApp.inject({
      method: 'POST',
      url: '/v2/models/multi/infer',
      payload: {
        inputs: [
          { name: 'x', shape: [1, 4], datatype: 'FP32', data: Array.from(x) },
          { name: 'ids', shape: [1, 3], datatype: 'INT32', data: Array.from(ids) },
        ],
        parameters: { binary_data_output: true },
      },
    });
    expect(jsonAsks.statusCode, jsonAsks.body).toBe(200);
    expect(Array.from(readAnswer(jsonAsks).data.out!)).toEqual(expected);

    // An octet-stream body without the header is all JSON.
    const noHeader = await multiApp.inject({
      method: 'POST',
      url: '/v2/models/multi/infer',
      payload: Buffer.from(JSON.stringify(plainJson)),
      headers: { 'content-type': 'application/octet-stream' },
    });
    expect(noHeader.statusCode, noHeader.body).toBe(200);
    expect(noHeader.json().outputs[0].data).toEqual(expected);
  });

  it('refuses lengths that lie, and malformed binary requests, with 400', async () => {
    const size = pixels.byteLength;
    const good = { inputs: [{ ...imageInput, parameters: { binary_data_size: size } }] };
    const header = Buffer.from(JSON.stringify(good));
    const data = bytesOf(pixels);
    const cases: [{ payload: Buffer; headers: Record<string, string> }, RegExp][] = [
      [
        binaryRequest(good, [data], header.length + data.length + 1),
        /Inference-Header-Content-Length \d+ is larger than the body \(\d+ bytes\)/,
      ],
      [
        binaryRequest(good, [data], 'abc'),
        /Inference-Header-Content-Length "abc" must be a non-negative integer/,
      ],
      [binaryRequest(good, [data], '-4'), /must be a non-negative integer/],
      [binaryRequest(good, [data], 0), /the inference header is empty/],
      [
        binaryRequest(good, [data], header.length - 3),
        /the inference header \(the first \d+ bytes\) is not valid JSON/,
      ],
      [binaryRequest(good, [data], header.length + 4), /is not valid JSON/],
      [
        binaryRequest({ inputs: [{ ...imageInput, parameters: { binary_data_size: size - 4 } }] }, [
          data.subarray(4),
        ]),
        /inputs\[0\]\.parameters\.binary_data_size 1532 does not match shape \[2,8,8,3\] of FP32: 384 elements x 4 bytes = 1536 bytes/,
      ],
      [
        binaryRequest(good, [data.subarray(0, size - 8)]),
        /inputs\[0\] declares binary_data_size 1536, but only 1528 bytes of binary data remain/,
      ],
      [
        binaryRequest(good, [data, Buffer.from([1, 2, 3])]),
        /the body has 3 bytes of binary data beyond the inputs' binary_data_size total of 1536/,
      ],
      [
        binaryRequest({ inputs: [{ ...imageInput, data: Array.from(pixels) }] }, [Buffer.from([0])]),
        /1 bytes of binary data beyond the inputs' binary_data_size total of 0/,
      ],
      [
        binaryRequest(
          { inputs: [{ ...imageInput, data: Array.from(pixels), parameters: { binary_data_size: size } }] },
          [data],
        ),
        /has both "data" and parameters.binary_data_size/,
      ],
      [
        binaryRequest({ inputs: [{ ...imageInput, parameters: { binary_data_size: 1.5 } }] }, []),
        /binary_data_size 1.5 must be a non-negative integer/,
      ],
      [
        binaryRequest({ ...good, parameters: { binary_data_output: 'yes' } }, [data]),
        /request.parameters.binary_data_output must be a boolean/,
      ],
      [
        binaryRequest({ ...good, outputs: [{ name: 'raw', parameters: { binary_data: 1 } }] }, [data]),
        /outputs\[0\]\.parameters\.binary_data must be a boolean/,
      ],
      [
        binaryRequest(
          { inputs: [{ ...imageInput, datatype: 'FP16', parameters: { binary_data_size: size / 2 } }] },
          [data.subarray(0, size / 2)],
        ),
        /FP16 is not supported/,
      ],
      [
        {
          payload: Buffer.concat([header, data]),
          headers: {
            'content-type': 'application/json',
            'inference-header-content-length': String(header.length),
          },
        },
        /carries binary data and needs Content-Type: application\/octet-stream \(got "application\/json"\)/,
      ],
    ];
    for (const [request, message] of cases) {
      const res = await app.inject({ method: 'POST', url: '/v2/models/img/infer', ...request });
      expect(res.statusCode, `${message}: ${res.body}`).toBe(400);
      expect(res.json().error).toMatch(message);
    }
    // binary_data_size in a plain JSON request names the extension and what it needs.
    const plain = await app.inject({ method: 'POST', url: '/v2/models/img/infer', payload: good });
    expect(plain.statusCode).toBe(400);
    expect(plain.json().error).toMatch(
      /binary tensor data extension needs Content-Type application\/octet-stream/,
    );
  });

  it('caps octet-stream bodies at the body limit and lists the extension', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/v2/models/img/infer',
      ...binaryRequest({ inputs: [] }, [Buffer.alloc(70 * 1024)]),
    });
    expect(res.statusCode).toBe(413);
    expect(res.json().error).toMatch(/request body exceeds the limit of 65536 bytes/);
    const meta = await app.inject({ method: 'GET', url: '/v2' });
    expect(meta.json().extensions).toEqual(['binary_tensor_data']);
  });
});

describe('octet-stream bodies', () => {
  /** [null,96,96,3] (108 KiB per example, above the pooling threshold) -> 2 scores. */
  function bigImageModel(): tf.LayersModel {
    const input = tf.input({ shape: [96, 96, 3], name: 'image' });
    const pooled = tf.layers.globalAveragePooling2d({}).apply(input) as tf.SymbolicTensor;
    const out = tf.layers.dense({ units: 2, name: 'out' }).apply(pooled) as tf.SymbolicTensor;
    const model = tf.model({ inputs: input, outputs: out });
    randomizeWeights(model, 23);
    return model;
  }

  it('reads a large body into a reused buffer, its float32 input viewed in place, aligned', async () => {
    const model = bigImageModel();
    const inner = localInferenceService(model, { name: 'big' });
    const seen: TensorData[] = [];
    const spy: InferenceService = {
      models: () => inner.models(),
      health: () => inner.health(),
      infer: (name, inputs, options) => {
        seen.push(inputs[0]!);
        return inner.infer(name, inputs, options);
      },
    };
    const bigApp = createHttpApi(spy);
    try {
      const data = Float32Array.from({ length: 96 * 96 * 3 }, (_, i) => Math.sin(i));
      const send = async (pad: number, shape = [1, 96, 96, 3]) => {
        // The JSON header's length varies with the padding: every alignment of the binary part.
        const json = `${JSON.stringify({
          inputs: [
            { name: 'image', shape, datatype: 'FP32', parameters: { binary_data_size: data.byteLength } },
          ],
          parameters: { binary_data_output: true },
        })}${' '.repeat(pad)}`;
        const header = Buffer.from(json);
        return bigApp.inject({
          method: 'POST',
          url: '/v2/models/big/infer',
          payload: Buffer.concat([header, bytesOf(data)]),
          headers: {
            'content-type': 'application/octet-stream',
            'inference-header-content-length': String(header.length),
          },
        });
      };
      const x = tf.tensor(data, [1, 96, 96, 3]);
      const y = model.predict(x) as tf.Tensor;
      const want = Array.from(y.dataSync());
      tf.dispose([x, y]);
      const idle = idleFrameBytes();
      for (let pad = 0; pad < 8; pad++) {
        const res = await send(pad);
        expect(res.statusCode).toBe(200);
        const got = Array.from(readAnswer(res).data.out!);
        for (const [i, v] of got.entries()) expect(Math.abs(v - want[i]!)).toBeLessThanOrEqual(1e-5);
        const input = seen.at(-1)!.data;
        expect(input.byteOffset % 8).toBe(0);
        // A view of the body, not a copy: its buffer holds the JSON header too.
        expect(input.buffer.byteLength).toBeGreaterThan(data.byteLength);
      }
      // Given back after each success and taken again by the next body.
      expect(idleFrameBytes()).toBeGreaterThan(idle);
      expect(new Set(seen.map((t) => t.data.buffer)).size).toBeLessThan(seen.length);
      // A refused request keeps its body out of the pool.
      const before = idleFrameBytes();
      const refused = await send(0, [1, 96, 96, 4]);
      expect(refused.statusCode).toBe(400);
      expect(idleFrameBytes()).toBeLessThan(before + 1);
    } finally {
      await bigApp.close();
      model.dispose();
    }
  });

  it('reads a body without Content-Length up to the limit, and refuses one longer than it declares', async () => {
    const header = Buffer.from(
      JSON.stringify({ inputs: [{ ...imageInput, parameters: { binary_data_size: pixels.byteLength } }] }),
    );
    const whole = Buffer.concat([header, bytesOf(pixels)]);
    const headers = {
      'content-type': 'application/octet-stream',
      'inference-header-content-length': String(header.length),
    };
    const chunked = await app.inject({
      method: 'POST',
      url: '/v2/models/img/infer',
      payload: Readable.from([whole.subarray(0, 100), whole.subarray(100)]),
      headers,
    });
    expect(chunked.statusCode).toBe(200);
    expect(chunked.json().outputs).toHaveLength(2);
    const lying = await app.inject({
      method: 'POST',
      url: '/v2/models/img/infer',
      payload: Readable.from([whole]),
      headers: { ...headers, 'content-length': String(whole.length - 8) },
    });
    expect(lying.statusCode).toBe(400);
    const tooLong = await app.inject({
      method: 'POST',
      url: '/v2/models/img/infer',
      payload: Readable.from([Buffer.alloc(40 * 1024), Buffer.alloc(40 * 1024)]),
      headers,
    });
    expect(tooLong.statusCode).toBe(413);
  });
});

describe('binary tensor helpers', () => {
  it('round-trips every dtype and checks BOOL bytes', () => {
    const f = new Float32Array([1.5, -0, Number.NaN, 3e38]);
    const i = new Int32Array([-2147483648, 0, 7, 2147483647]);
    const u = new Uint8Array([0, 255, 3]);
    // Unaligned views must read back too.
    const shifted = (b: Uint8Array) => {
      const buf = new Uint8Array(b.length + 1);
      buf.set(b, 1);
      return buf.subarray(1);
    };
    expect(Array.from(readBinaryTensor(shifted(tensorBytes(f)), 'float32', 4, 'x'))).toEqual(Array.from(f));
    expect(Array.from(readBinaryTensor(shifted(tensorBytes(i)), 'int32', 4, 'x'))).toEqual(Array.from(i));
    expect(Array.from(readBinaryTensor(tensorBytes(u), 'uint8', 3, 'x'))).toEqual([0, 255, 3]);
    expect(Array.from(readBinaryTensor(new Uint8Array([1, 0, 1]), 'bool', 3, 'x'))).toEqual([1, 0, 1]);
    expect(() => readBinaryTensor(new Uint8Array([1, 2]), 'bool', 2, 'inputs[3]')).toThrow(
      /inputs\[3\]: BOOL element 1 is the byte 2; BOOL bytes must be 0 or 1/,
    );
    // Little-endian on the wire: 1.0f is 00 00 80 3f.
    expect(Array.from(tensorBytes(new Float32Array([1])))).toEqual([0, 0, 0x80, 0x3f]);
  });

  it('splits a body at its header and hands out every byte once', () => {
    const body = Buffer.concat([Buffer.from('{"a":1}'), Buffer.from([9, 8, 7])]);
    const { json, binary } = splitBinaryBody(body, '7');
    expect(json).toEqual({ a: 1 });
    expect(Array.from(binary!.take(2, 'first'))).toEqual([9, 8]);
    expect(() => binary!.finish()).toThrow(/1 bytes of binary data beyond/);
    expect(() => binary!.take(2, 'second')).toThrow(/second declares binary_data_size 2, but only 1 bytes/);
    expect(Array.from(binary!.take(1, 'third'))).toEqual([7]);
    expect(() => binary!.finish()).not.toThrow();
    expect(() => splitBinaryBody(body, ['7', '7'])).toThrow(/given more than once/);
  });
});
