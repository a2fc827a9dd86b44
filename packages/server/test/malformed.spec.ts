/**
 * Malformed-input test of every HTTP route: a seeded generator makes well over a thousand bad
 * requests (bad JSON, wrong types, NaN/Infinity, ragged and wrongly shaped arrays, wrong
 * dtypes, huge and negative dims, truncated binary bodies, lying
 * Inference-Header-Content-Length, oversized bodies, corrupt images, wrong content types,
 * unknown models, versions and routes). Each must get a 4xx with a JSON `error` message, never
 * a 5xx or a hang. Valid requests are interleaved throughout and must answer what
 * `model.predict` computes; the tensor count must not grow. Most requests go through
 * fastify's inject, about a hundred over a real socket.
 */

import { crc32 } from 'node:zlib';
import { localInferenceService } from '@dinfer/core';
import { initBackend } from '@dinfer/core/node';
import * as tf from '@tensorflow/tfjs';
import type { FastifyInstance } from 'fastify';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHttpApi } from '../src/index.js';
import { prng } from './fixtures/random-weights.js';

const H = 8;
const W = 8;
const C = 3;
const EXAMPLE = H * W * C;
const CLASSES = 5;
const BODY_LIMIT = 64 * 1024;
const MODEL = 'tiny';
const V2 = `/v2/models/${MODEL}/infer`;
const V2_VERSIONED = `/v2/models/${MODEL}/versions/1/infer`;
/** Requests that take longer than this count as hung. */
const HANG_MS = 10_000;

type Method = 'GET' | 'POST' | 'PUT' | 'DELETE' | 'PATCH' | 'HEAD' | 'OPTIONS';

/** What a valid request must answer, checked against model.predict. */
type Expectation =
  | { kind: 'simple'; input: Float32Array; batch: number }
  | { kind: 'v2'; input: Float32Array; batch: number; binaryOutput: boolean; id?: string }
  | { kind: 'image'; pixels: Uint8Array }
  | { kind: 'metadata' }
  | { kind: 'ready' };

interface Case {
  readonly category: string;
  readonly method: Method;
  readonly url: string;
  readonly headers: Record<string, string>;
  readonly payload?: string | Buffer;
  /** Set for valid requests. */
  readonly expect?: Expectation;
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | number | undefined>;
  body: Buffer;
}

const JSON_HEADERS = { 'content-type': 'application/json' };

/** The generator of requests, deterministic for a seed. */
class Generator {
  readonly #next: () => number;
  readonly #validImages: Buffer[];
  readonly #imagePixels: Uint8Array[];

  constructor(seed: number, images: { png: Buffer; pixels: Uint8Array }[]) {
    this.#next = prng(seed);
    this.#validImages = images.map((i) => i.png);
    this.#imagePixels = images.map((i) => i.pixels);
  }

  random(): number {
    return this.#next();
  }

  int(lo: number, hi: number): number {
    return lo + Math.floor(this.#next() * (hi - lo + 1));
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.#next() * items.length)]!;
  }

  values(n: number): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = Math.fround(this.#next() * 2 - 1);
    return out;
  }

  bytes(n: number): Buffer {
    const out = Buffer.alloc(n);
    for (let i = 0; i < n; i++) out[i] = Math.floor(this.#next() * 256);
    return out;
  }

  inferUrl(): string {
    return this.pick([V2, V2_VERSIONED]);
  }

  anyInferUrl(): string {
    return this.pick(['/api/infer', V2, V2_VERSIONED]);
  }

  // ---- valid requests -------------------------------------------------------------------

  valid(): Case {
    const kind = this.int(0, 9);
    if (kind <= 2) {
      const batch = this.int(1, 3);
      const input = this.values(batch * EXAMPLE);
      const single = batch === 1 && this.random() < 0.5;
      const nested = nest(input, single ? [H, W, C] : [batch, H, W, C]);
      const body: Record<string, unknown> = { input: nested };
      if (this.random() < 0.5) body.model = MODEL;
      return {
        category: 'valid',
        method: 'POST',
        url: '/api/infer',
        headers: { ...JSON_HEADERS, ...this.oddRequestId() },
        payload: JSON.stringify(body),
        expect: { kind: 'simple', input, batch },
      };
    }
    if (kind <= 4) {
      const batch = this.int(1, 3);
      const input = this.values(batch * EXAMPLE);
      const shape = [batch, H, W, C];
      const id = this.random() < 0.5 ? `req-${this.int(0, 1e6)}` : undefined;
      const data = this.random() < 0.5 ? Array.from(input) : nest(input, shape);
      const body: Record<string, unknown> = {
        inputs: [{ name: 'pixels', shape, datatype: 'FP32', data }],
        ...(id === undefined ? {} : { id }),
        ...(this.random() < 0.3 ? { outputs: [{ name: 'probs' }] } : {}),
      };
      return {
        category: 'valid',
        method: 'POST',
        url: this.inferUrl(),
        headers: { ...JSON_HEADERS },
        payload: JSON.stringify(body),
        expect: { kind: 'v2', input, batch, binaryOutput: false, ...(id === undefined ? {} : { id }) },
      };
    }
    if (kind <= 6) {
      const batch = this.int(1, 3);
      const input = this.values(batch * EXAMPLE);
      const binaryOutput = this.random() < 0.5;
      const { headers, payload } = binaryRequest(
        { shape: [batch, H, W, C], datatype: 'FP32' },
        Buffer.from(input.buffer),
        binaryOutput ? { binary_data_output: true } : undefined,
      );
      return {
        category: 'valid',
        method: 'POST',
        url: this.inferUrl(),
        headers,
        payload,
        expect: { kind: 'v2', input, batch, binaryOutput },
      };
    }
    if (kind <= 8) {
      const i = this.int(0, this.#validImages.length - 1);
      const png = this.#validImages[i]!;
      const pixels = this.#imagePixels[i]!;
      if (this.random() < 0.5) {
        return {
          category: 'valid',
          method: 'POST',
          url: this.pick(['/api/infer', `/api/infer?model=${MODEL}`]),
          headers: { 'content-type': this.pick(['image/png', 'application/octet-stream']) },
          payload: png,
          expect: { kind: 'image', pixels },
        };
      }
      const form = multipart([{ name: 'image', filename: 'x.png', type: 'image/png', data: png }]);
      return {
        category: 'valid',
        method: 'POST',
        url: '/api/infer',
        ...form,
        expect: { kind: 'image', pixels },
      };
    }
    return this.pick<Case>([
      {
        category: 'valid',
        method: 'GET',
        url: `/v2/models/${MODEL}`,
        headers: {},
        expect: { kind: 'metadata' },
      },
      {
        category: 'valid',
        method: 'GET',
        url: `/v2/models/${MODEL}/versions/1`,
        headers: {},
        expect: { kind: 'metadata' },
      },
      {
        category: 'valid',
        method: 'GET',
        url: `/v2/models/${MODEL}/ready`,
        headers: {},
        expect: { kind: 'ready' },
      },
      { category: 'valid', method: 'GET', url: '/v2/health/ready', headers: {}, expect: { kind: 'ready' } },
    ]);
  }

  /** Sometimes an odd x-request-id: the request stays valid, the id is replaced when unusable. */
  oddRequestId(): Record<string, string> {
    const r = this.random();
    if (r < 0.7) return {};
    return {
      'x-request-id': this.pick(['', ' ', 'x'.repeat(300), 'a b c', '../../etc', 'ok-id-123', '{"$ne":1}']),
    };
  }

  // ---- malformed requests ---------------------------------------------------------------

  validJsonFor(url: string, batch = 1): unknown {
    const input = this.values(batch * EXAMPLE);
    return url === '/api/infer'
      ? { input: nest(input, [batch, H, W, C]) }
      : { inputs: [{ name: 'pixels', shape: [batch, H, W, C], datatype: 'FP32', data: Array.from(input) }] };
  }

  badJson(): Case {
    const url = this.anyInferUrl();
    const text = JSON.stringify(this.validJsonFor(url));
    const payload = this.pick<() => string | Buffer>([
      () => text.slice(0, this.int(1, text.length - 1)),
      () => `${text}}`,
      () => `x${text}`,
      () => text.replace(/,/, ',,'),
      () => text.replace(/"/g, "'"),
      () => text.replace(/"(input|inputs)"/, '$1'),
      () => `${text.slice(0, -1)},}`,
      () => 'NaN',
      () => '{"input": [1, 2, 3',
      () => '{"a":1,"a":',
      () => ' ',
      () => '\u0000\u0001\u0002',
      () => this.bytes(this.int(1, 300)),
      () => '['.repeat(this.int(1000, 50_000)),
      () => `{"input": ${'['.repeat(this.int(10, 30_000))}1${']'.repeat(3)}}`,
      () => '{"__proto__": {"polluted": true}, "input": [1]}',
      () => '{"constructor": {"prototype": {"polluted": true}}, "input": [1]}',
      () => text.replace(/[0-9]\./, '0x1.'),
      () => text.replace(/\d/, '-'),
      () => `\ufeff${text}`.replace(/:/, '::'),
    ])();
    return { category: 'bad-json', method: 'POST', url, headers: { ...JSON_HEADERS }, payload };
  }

  wrongTypes(): Case {
    const url = this.anyInferUrl();
    const valid = this.validJsonFor(url) as Record<string, unknown>;
    let body: unknown;
    if (url === '/api/infer') {
      body = this.pick<() => unknown>([
        () => null,
        () => 1,
        () => 'a string',
        () => true,
        () => [],
        () => [1, 2],
        () => ({}),
        () => ({ input: 'abc' }),
        () => ({ input: {} }),
        () => ({ input: 5 }),
        () => ({ input: true }),
        () => ({ input: null }),
        () => ({ input: [[['a']]] }),
        () => ({ ...valid, model: 5 }),
        () => ({ ...valid, model: [] }),
        () => ({ ...valid, model: null }),
        () => ({ ...valid, model: { name: MODEL } }),
        () => ({ input: { 0: [1], length: 1 } }),
        () => ({ inputs: valid.input }),
      ])();
    } else {
      const input = (valid.inputs as Record<string, unknown>[])[0]!;
      const withInput = (patch: Record<string, unknown>) => ({ inputs: [{ ...input, ...patch }] });
      body = this.pick<() => unknown>([
        () => null,
        () => [],
        () => 'inputs',
        () => ({}),
        () => ({ inputs: 'x' }),
        () => ({ inputs: {} }),
        () => ({ inputs: [] }),
        () => ({ inputs: [5] }),
        () => ({ inputs: [null] }),
        () => ({ inputs: [[input]] }),
        () => withInput({ name: 5 }),
        () => withInput({ name: null }),
        () => withInput({ shape: '1,8,8,3' }),
        () => withInput({ shape: {} }),
        () => withInput({ shape: [[1], 8, 8, 3] }),
        () => withInput({ shape: undefined }),
        () => withInput({ datatype: 32 }),
        () => withInput({ datatype: null }),
        () => withInput({ data: 'abc' }),
        () => withInput({ data: {} }),
        () => withInput({ data: null }),
        () => withInput({ data: undefined }),
        () => withInput({ data: true }),
        () => withInput({ parameters: 'x' }),
        () => withInput({ parameters: 5 }),
        () => ({ ...withInput({}), id: 5 }),
        () => ({ ...withInput({}), id: { a: 1 } }),
        () => ({ ...withInput({}), outputs: 'probs' }),
        () => ({ ...withInput({}), outputs: [5] }),
        () => ({ ...withInput({}), outputs: [{ name: 7 }] }),
        () => ({ ...withInput({}), outputs: [{ name: 'nope' }] }),
        () => ({ ...withInput({}), parameters: 'x' }),
        () => ({ ...withInput({}), parameters: { binary_data_output: 'yes' } }),
        () => ({ inputs: [input, input] }),
        () => ({ inputs: [{ ...input, name: 'other' }] }),
      ])();
    }
    return {
      category: 'wrong-types',
      method: 'POST',
      url,
      headers: { ...JSON_HEADERS },
      payload: JSON.stringify(body),
    };
  }

  nanInfinity(): Case {
    const url = this.anyInferUrl();
    const valid = this.validJsonFor(url) as Record<string, unknown>;
    const leaf = this.pick<unknown>(['NaN', 'Infinity', '-Infinity', 'nan', '1.5', '', null, true, {}, []]);
    const literal = this.pick(['1e999', '-1e999', '3.5e38', '-4e38']);
    const useLiteral = this.random() < 0.35;
    const marker = '__MARK__';
    const at = this.int(0, EXAMPLE - 1);
    if (url === '/api/infer') {
      const nested = valid.input as number[][][][];
      const flat = at;
      const c = flat % C;
      const w = Math.floor(flat / C) % W;
      const h = Math.floor(flat / (C * W));
      (nested[0]![h]![w] as unknown[])[c] = useLiteral ? marker : leaf;
    } else {
      const input = (valid.inputs as { data: unknown[] }[])[0]!;
      input.data[at] = useLiteral ? marker : leaf;
    }
    let text = JSON.stringify(valid);
    if (useLiteral) text = text.replace(`"${marker}"`, literal);
    return { category: 'nan-infinity', method: 'POST', url, headers: { ...JSON_HEADERS }, payload: text };
  }

  wrongShape(): Case {
    const url = this.anyInferUrl();
    if (url === '/api/infer') {
      const shapes = [
        [H, W],
        [H, W, C + 1],
        [H - 1, W, C],
        [1, 1, H, W, C],
        [W * H * C],
        [2, H, W, C - 1],
        [0],
      ];
      let input: unknown;
      const r = this.random();
      if (r < 0.35) {
        const shape = this.pick(shapes);
        const size = shape.reduce((a, b) => a * b, 1);
        input = nest(this.values(size), shape);
      } else if (r < 0.8) {
        input = ragged(nest(this.values(2 * EXAMPLE), [2, H, W, C]), this);
      } else {
        input = this.pick<unknown>([[], [[]], [[[]]], [[[[]]]], [[[[], []]]]]);
      }
      return {
        category: 'wrong-shape',
        method: 'POST',
        url,
        headers: { ...JSON_HEADERS },
        payload: JSON.stringify({ input }),
      };
    }
    const batch = this.int(1, 2);
    const values = this.values(batch * EXAMPLE);
    const tensor: Record<string, unknown> = { name: 'pixels', shape: [batch, H, W, C], datatype: 'FP32' };
    const variant = this.int(0, 9);
    if (variant === 0) tensor.data = Array.from(values).slice(0, -this.int(1, 5));
    else if (variant === 1) tensor.data = [...Array.from(values), 0.5];
    else if (variant === 2) tensor.shape = [batch + 1, H, W, C];
    else if (variant === 3)
      tensor.shape = this.pick([[batch, H, W, C + 1], [batch, H * W, C], [batch, H, W], []]);
    else if (variant === 4) tensor.shape = [1, 1, 1, 1, 1, 1, 1, 1, batch * EXAMPLE];
    else if (variant === 5) tensor.data = ragged(nest(values, [batch, H, W, C]), this);
    else if (variant === 6) tensor.data = nest(values, [batch, H * W, C]);
    else if (variant === 7) {
      tensor.shape = [0, H, W, C];
      tensor.data = [];
    } else if (variant === 8) tensor.data = [];
    else tensor.data = [Array.from(values)];
    if (tensor.data === undefined) tensor.data = Array.from(values);
    return {
      category: 'wrong-shape',
      method: 'POST',
      url,
      headers: { ...JSON_HEADERS },
      payload: JSON.stringify({ inputs: [tensor] }),
    };
  }

  wrongDtype(): Case {
    const url = this.inferUrl();
    const datatype = this.pick([
      'INT32',
      'BOOL',
      'UINT8',
      'FP16',
      'FP64',
      'INT64',
      'INT8',
      'UINT64',
      'BYTES',
      'fp32',
      'float32',
      '',
      'FP32 ',
      'STRING',
      'FP32\u0000',
    ]);
    if (this.random() < 0.3) {
      const bytes = this.bytes(EXAMPLE * this.pick([1, 2, 4, 8]));
      const { headers, payload } = binaryRequest({ shape: [1, H, W, C], datatype }, bytes);
      return { category: 'wrong-dtype', method: 'POST', url, headers, payload };
    }
    const data =
      datatype === 'BOOL' || this.random() < 0.2
        ? Array.from({ length: EXAMPLE }, () => this.random() < 0.5)
        : datatype === 'BYTES'
          ? Array.from({ length: EXAMPLE }, () => 'ab')
          : Array.from({ length: EXAMPLE }, () => this.int(0, 9));
    const body = {
      inputs: [
        { name: 'pixels', shape: [1, H, W, C], datatype: this.random() < 0.2 ? 'FP32' : datatype, data },
      ],
    };
    if (body.inputs[0]!.datatype === 'FP32' && typeof data[0] === 'number')
      body.inputs[0]!.datatype = 'INT32';
    return {
      category: 'wrong-dtype',
      method: 'POST',
      url,
      headers: { ...JSON_HEADERS },
      payload: JSON.stringify(body),
    };
  }

  hugeDims(): Case {
    const url = this.inferUrl();
    const big = this.pick([2 ** 31, 2 ** 32 + 1, 1e15, Number.MAX_SAFE_INTEGER, 1e300, 65536 * 65536]);
    const where = this.int(0, 3);
    const shape = [1, H, W, C];
    shape[where] = big;
    if (this.random() < 0.5) {
      const size = this.pick([EXAMPLE * 4, big * 4, 2 ** 53, 0]);
      const { headers, payload } = binaryRequest(
        { shape, datatype: 'FP32' },
        this.bytes(EXAMPLE * 4),
        undefined,
        size,
      );
      return { category: 'huge-dims', method: 'POST', url, headers, payload };
    }
    const body = {
      inputs: [{ name: 'pixels', shape, datatype: 'FP32', data: Array.from(this.values(EXAMPLE)) }],
    };
    return {
      category: 'huge-dims',
      method: 'POST',
      url,
      headers: { ...JSON_HEADERS },
      payload: JSON.stringify(body),
    };
  }

  negativeDims(): Case {
    const url = this.inferUrl();
    const shape: unknown[] = [1, H, W, C];
    shape[this.int(0, 3)] = this.pick<unknown>([-1, -8, -(2 ** 31), 1.5, '8', null, true, -0.5, [8]]);
    const values = this.values(EXAMPLE);
    if (this.random() < 0.4) {
      const { headers, payload } = binaryRequest({ shape, datatype: 'FP32' }, Buffer.from(values.buffer));
      return { category: 'negative-dims', method: 'POST', url, headers, payload };
    }
    const body = { inputs: [{ name: 'pixels', shape, datatype: 'FP32', data: Array.from(values) }] };
    return {
      category: 'negative-dims',
      method: 'POST',
      url,
      headers: { ...JSON_HEADERS },
      payload: JSON.stringify(body),
    };
  }

  truncatedBinary(): Case {
    const url = this.inferUrl();
    const batch = this.int(1, 2);
    const bytes = Buffer.from(this.values(batch * EXAMPLE).buffer);
    const { headers, payload } = binaryRequest({ shape: [batch, H, W, C], datatype: 'FP32' }, bytes);
    const headerLength = Number(headers['inference-header-content-length']);
    const variant = this.int(0, 4);
    let body: Buffer;
    if (variant === 0) body = payload.subarray(0, this.int(headerLength, payload.length - 1));
    else if (variant === 1) body = payload.subarray(0, this.int(1, headerLength - 1));
    else if (variant === 2) body = Buffer.concat([payload, this.bytes(this.int(1, 16))]);
    else if (variant === 3) body = payload.subarray(0, headerLength);
    else body = Buffer.concat([payload.subarray(0, payload.length - 1 - this.int(0, 2)), Buffer.alloc(0)]);
    return { category: 'truncated-binary', method: 'POST', url, headers, payload: body };
  }

  lyingHeader(): Case {
    const url = this.inferUrl();
    const bytes = Buffer.from(this.values(EXAMPLE).buffer);
    const { headers, payload } = binaryRequest({ shape: [1, H, W, C], datatype: 'FP32' }, bytes);
    const headerLength = Number(headers['inference-header-content-length']);
    const lie = this.pick<() => string>([
      () => String(payload.length + this.int(1, 10_000)),
      () => String(headerLength - this.int(1, Math.min(40, headerLength - 1))),
      () => String(headerLength + this.int(1, 64)),
      () => '0',
      () => '-5',
      () => 'abc',
      () => '1e2',
      () => '12abc',
      () => '99999999999999999999',
      () => '0x10',
      () => '',
      () => String(headerLength + 0.5),
    ])();
    const contentType = this.pick([
      'application/octet-stream',
      'application/octet-stream',
      'application/json',
    ]);
    return {
      category: 'lying-header',
      method: 'POST',
      url,
      headers: { ...headers, 'content-type': contentType, 'inference-header-content-length': lie },
      payload,
    };
  }

  oversized(): Case {
    const r = this.int(0, 3);
    if (r === 0) {
      const n = Math.ceil(BODY_LIMIT / 2) + this.int(0, 50_000);
      const payload = `{"input": [${new Array(n).fill('0.5').join(',')}]}`;
      return {
        category: 'oversized',
        method: 'POST',
        url: this.anyInferUrl(),
        headers: { ...JSON_HEADERS },
        payload,
      };
    }
    if (r === 1) {
      const { headers, payload } = binaryRequest(
        { shape: [1, H, W, C], datatype: 'FP32' },
        this.bytes(BODY_LIMIT + this.int(1, 5000)),
      );
      return { category: 'oversized', method: 'POST', url: this.inferUrl(), headers, payload };
    }
    if (r === 2) {
      return {
        category: 'oversized',
        method: 'POST',
        url: '/api/infer',
        headers: { 'content-type': this.pick(['image/png', 'image/jpeg', 'application/octet-stream']) },
        payload: this.bytes(BODY_LIMIT + this.int(1, 5000)),
      };
    }
    const form = multipart([
      { name: 'image', filename: 'big.png', type: 'image/png', data: this.bytes(BODY_LIMIT + 100) },
    ]);
    return { category: 'oversized', method: 'POST', url: '/api/infer', ...form };
  }

  corruptImage(): Case {
    const png = this.pick(this.#validImages);
    const bytes = this.pick<() => Buffer>([
      () => this.bytes(this.int(1, 2000)),
      () => png.subarray(0, this.int(1, png.length - 13)),
      () => Buffer.concat([png.subarray(0, 8), this.bytes(this.int(10, 500))]),
      () => Buffer.alloc(0),
      () => withPngSize(png, this.pick([50_000, 100_000, 2 ** 31 - 1]), this.pick([50_000, 1, 100_000])),
      () => withPngSize(png, 0, 0),
      () => Buffer.from('not an image at all'),
      () => Buffer.from([0xff, 0xd8, 0xff, 0xe0, ...this.bytes(100)]),
      () => Buffer.from([0x52, 0x49, 0x46, 0x46, 1, 0, 0, 0, 0x57, 0x45, 0x42, 0x50, ...this.bytes(50)]),
      () => Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"></svg>'),
      () => Buffer.from('GIF89a\u0001\u0000\u0001\u0000'),
      () => corruptMiddle(png, this),
    ])();
    const r = this.random();
    if (r < 0.6) {
      return {
        category: 'corrupt-image',
        method: 'POST',
        url: '/api/infer',
        headers: {
          'content-type': this.pick(['image/png', 'image/jpeg', 'image/webp', 'application/octet-stream']),
        },
        payload: bytes,
      };
    }
    const form = this.pick<() => { headers: Record<string, string>; payload: Buffer }>([
      () => multipart([{ name: 'image', filename: 'x.png', type: 'image/png', data: bytes }]),
      () => multipart([{ name: 'model', data: Buffer.from(MODEL) }]),
      () => multipart([]),
      () => {
        const ok = multipart([{ name: 'image', filename: 'x.png', type: 'image/png', data: png }]);
        return { headers: ok.headers, payload: ok.payload.subarray(0, this.int(10, ok.payload.length - 10)) };
      },
      () => {
        const ok = multipart([{ name: 'image', filename: 'x.png', type: 'image/png', data: png }]);
        return { headers: { 'content-type': 'multipart/form-data; boundary=wrong' }, payload: ok.payload };
      },
      () => ({ headers: { 'content-type': 'multipart/form-data' }, payload: Buffer.from('--x\r\n\r\n') }),
      () =>
        multipart([
          { name: 'image', filename: 'a.png', type: 'image/png', data: png },
          { name: 'image', filename: 'b.png', type: 'image/png', data: png },
        ]),
    ])();
    return { category: 'corrupt-image', method: 'POST', url: '/api/infer', ...form };
  }

  contentType(): Case {
    const url = this.anyInferUrl();
    const text = JSON.stringify(this.validJsonFor(url));
    const variant = this.int(0, 7);
    if (variant === 0)
      return {
        category: 'content-type',
        method: 'POST',
        url,
        headers: { 'content-type': 'text/plain' },
        payload: text,
      };
    if (variant === 1)
      return {
        category: 'content-type',
        method: 'POST',
        url,
        headers: { 'content-type': 'application/xml' },
        payload: '<input>1</input>',
      };
    if (variant === 2) {
      return {
        category: 'content-type',
        method: 'POST',
        url,
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        payload: 'input=1&model=tiny',
      };
    }
    if (variant === 3) return { category: 'content-type', method: 'POST', url, headers: {}, payload: text };
    if (variant === 4) {
      // A PNG sent to the v2 route, or JSON declared as an image to /api/infer.
      return url === '/api/infer'
        ? {
            category: 'content-type',
            method: 'POST',
            url,
            headers: { 'content-type': 'image/png' },
            payload: text,
          }
        : {
            category: 'content-type',
            method: 'POST',
            url,
            headers: { 'content-type': 'image/png' },
            payload: this.pick(this.#validImages),
          };
    }
    if (variant === 5) {
      const form = multipart([
        { name: 'image', filename: 'x.png', type: 'image/png', data: this.pick(this.#validImages) },
      ]);
      return url === '/api/infer'
        ? {
            category: 'content-type',
            method: 'POST',
            url,
            headers: { 'content-type': 'multipart/mixed; boundary=b' },
            payload: form.payload,
          }
        : { category: 'content-type', method: 'POST', url, ...form };
    }
    if (variant === 6)
      return {
        category: 'content-type',
        method: 'POST',
        url,
        headers: { 'content-type': 'application/octet-stream' },
        payload: text.slice(0, -1),
      };
    return {
      category: 'content-type',
      method: 'POST',
      url,
      headers: { 'content-type': 'application/json-patch+json' },
      payload: text,
    };
  }

  unknownModel(): Case {
    const name = this.pick([
      'nope',
      'TINY',
      'tiny%20',
      `tiny${this.int(0, 99)}`,
      'ti%00ny',
      '%F0%9F%98%80',
      'a'.repeat(this.int(101, 3000)),
      '..',
      '%2e%2e',
      'tiny%2Fx',
    ]);
    const version = this.pick(['2', '0', 'latest', '1.0', '-1', '%20']);
    const body = JSON.stringify(this.validJsonFor(V2));
    return this.pick<Case>([
      {
        category: 'unknown-model',
        method: 'POST',
        url: `/v2/models/${name}/infer`,
        headers: { ...JSON_HEADERS },
        payload: body,
      },
      {
        category: 'unknown-model',
        method: 'POST',
        url: `/v2/models/${MODEL}/versions/${version}/infer`,
        headers: { ...JSON_HEADERS },
        payload: body,
      },
      { category: 'unknown-model', method: 'GET', url: `/v2/models/${name}`, headers: {} },
      {
        category: 'unknown-model',
        method: 'GET',
        url: `/v2/models/${MODEL}/versions/${version}`,
        headers: {},
      },
      { category: 'unknown-model', method: 'GET', url: `/v2/models/${name}/ready`, headers: {} },
      {
        category: 'unknown-model',
        method: 'GET',
        url: `/v2/models/${MODEL}/versions/${version}/ready`,
        headers: {},
      },
      {
        category: 'unknown-model',
        method: 'POST',
        url: '/api/infer',
        headers: { ...JSON_HEADERS },
        payload: JSON.stringify({
          ...(this.validJsonFor('/api/infer') as object),
          model: decodeURIComponentSafe(name),
        }),
      },
      {
        category: 'unknown-model',
        method: 'POST',
        url: `/api/infer?model=${name}`,
        headers: { 'content-type': 'image/png' },
        payload: this.pick(this.#validImages),
      },
      {
        category: 'unknown-model',
        method: 'POST',
        url: '/api/infer',
        ...multipart([
          { name: 'model', data: Buffer.from(decodeURIComponentSafe(name)) },
          { name: 'image', filename: 'x.png', type: 'image/png', data: this.pick(this.#validImages) },
        ]),
      },
    ]);
  }

  unknownRoute(): Case {
    const method = this.pick<Method>(['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS']);
    const knownPost = ['/api/infer', V2, V2_VERSIONED];
    const knownGet = [
      '/v2',
      '/v2/health/live',
      '/v2/health/ready',
      `/v2/models/${MODEL}`,
      `/v2/models/${MODEL}/ready`,
    ];
    const r = this.random();
    let url: string;
    let m = method;
    if (r < 0.3) {
      url = this.pick(knownPost);
      if (m === 'POST') m = 'PUT';
    } else if (r < 0.5) {
      url = this.pick(knownGet);
      if (m === 'GET' || m === 'HEAD') m = 'DELETE';
    } else {
      url = this.pick([
        '/v3',
        '/v2/models',
        '/v2/models/',
        `/v2/models/${MODEL}/infer/extra`,
        '/api',
        '/api/infer/',
        '/api/inference',
        '/%',
        '/%zz',
        '/..%2f..%2fetc%2fpasswd',
        '/v2/health/../../../x',
        `/v2/models/${MODEL}/versions`,
        `/v2/models/${MODEL}/versions/`,
        `/${'x/'.repeat(this.int(10, 500))}`,
        '/v2/repository/index',
        '/api/infer?model=a&model=b',
      ]);
      if (url === '/api/infer?model=a&model=b') m = 'POST';
    }
    const withBody = m !== 'GET' && m !== 'HEAD' && this.random() < 0.5;
    return {
      category: 'unknown-route',
      method: m,
      url,
      headers: withBody ? { ...JSON_HEADERS } : {},
      ...(withBody ? { payload: JSON.stringify(this.validJsonFor('/api/infer')) } : {}),
    };
  }

  malformed(): Case {
    const generators = [
      () => this.badJson(),
      () => this.wrongTypes(),
      () => this.nanInfinity(),
      () => this.wrongShape(),
      () => this.wrongDtype(),
      () => this.hugeDims(),
      () => this.negativeDims(),
      () => this.truncatedBinary(),
      () => this.lyingHeader(),
      () => this.oversized(),
      () => this.corruptImage(),
      () => this.contentType(),
      () => this.unknownModel(),
      () => this.unknownRoute(),
    ];
    return this.pick(generators)();
  }
}

function decodeURIComponentSafe(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/** Nests a flat array into `shape` (row-major). */
function nest(flat: ArrayLike<number>, shape: readonly number[], offset = 0): unknown {
  if (shape.length === 0) return flat[offset];
  if (shape.length === 1) return Array.from({ length: shape[0]! }, (_, i) => flat[offset + i]);
  const [first, ...rest] = shape;
  const step = rest.reduce((a, b) => a * b, 1);
  return Array.from({ length: first! }, (_, i) => nest(flat, rest, offset + i * step));
}

/**
 * Makes one sub-array of a nested batch the wrong length or kind, below the batch level (a
 * batch with one example more or less is still valid).
 */
function ragged(nested: unknown, g: Generator): unknown {
  let node = nested as unknown[];
  const depth = g.int(1, 3);
  for (let d = 0; d < depth && Array.isArray(node[0]); d++)
    node = node[g.int(0, node.length - 1)] as unknown[];
  const i = g.int(0, node.length - 1);
  const variant = g.int(0, 3);
  if (variant === 0) node.splice(i, 1);
  else if (variant === 1) node.push(Array.isArray(node[0]) ? structuredClone(node[0]) : 0.25);
  else if (variant === 2) node[i] = Array.isArray(node[i]) ? 0.5 : [0.5, 0.5];
  else node[i] = Array.isArray(node[i]) ? [] : [[0.5]];
  return nested;
}

/** A KServe binary request: JSON header + raw bytes. */
function binaryRequest(
  tensor: { shape: unknown[]; datatype: string },
  bytes: Buffer,
  parameters?: Record<string, unknown>,
  declaredSize: number = bytes.length,
): { headers: Record<string, string>; payload: Buffer } {
  const header = Buffer.from(
    JSON.stringify({
      inputs: [{ name: 'pixels', ...tensor, parameters: { binary_data_size: declaredSize } }],
      ...(parameters === undefined ? {} : { parameters }),
    }),
  );
  return {
    headers: {
      'content-type': 'application/octet-stream',
      'inference-header-content-length': String(header.length),
    },
    payload: Buffer.concat([header, bytes]),
  };
}

/** A multipart/form-data body. */
function multipart(parts: { name: string; filename?: string; type?: string; data: Buffer }[]): {
  headers: Record<string, string>;
  payload: Buffer;
} {
  const boundary = '----dinferBoundary7MA4YWxkTrZu0gW';
  const chunks: Buffer[] = [];
  for (const part of parts) {
    const disposition = `form-data; name="${part.name}"${part.filename === undefined ? '' : `; filename="${part.filename}"`}`;
    const head =
      `--${boundary}\r\nContent-Disposition: ${disposition}\r\n` +
      (part.type === undefined ? '' : `Content-Type: ${part.type}\r\n`) +
      '\r\n';
    chunks.push(Buffer.from(head), part.data, Buffer.from('\r\n'));
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return {
    headers: { 'content-type': `multipart/form-data; boundary=${boundary}` },
    payload: Buffer.concat(chunks),
  };
}

/** A PNG whose IHDR claims `width` x `height` (CRC fixed, so only the size is a lie). */
function withPngSize(png: Buffer, width: number, height: number): Buffer {
  const out = Buffer.from(png);
  // Signature (8) + length (4) + "IHDR" (4), then width and height.
  out.writeUInt32BE(width >>> 0, 16);
  out.writeUInt32BE(height >>> 0, 20);
  out.writeUInt32BE(crc32(out.subarray(12, 29)), 29);
  return out;
}

/** A PNG with bytes in the middle overwritten (its CRCs no longer match). */
function corruptMiddle(png: Buffer, g: Generator): Buffer {
  const out = Buffer.from(png);
  for (let i = 0; i < 16; i++) out[g.int(33, out.length - 13)] = g.int(0, 255);
  return out;
}

/** Top-5 of one example, the way an independent reader would rank them. */
function top5(probs: readonly number[]): number[] {
  return probs
    .map((p, i) => ({ p, i }))
    .sort((a, b) => b.p - a.p || a.i - b.i)
    .slice(0, 5)
    .map((e) => e.i);
}

function close(actual: readonly number[], expected: readonly number[]): boolean {
  return (
    actual.length === expected.length &&
    actual.every((a, i) => Math.abs(a - expected[i]!) <= 1e-5 + 1e-4 * Math.abs(expected[i]!))
  );
}

describe('malformed requests on every route', () => {
  let model: tf.LayersModel;
  let app: FastifyInstance;
  let baseUrl: string;
  let images: { png: Buffer; pixels: Uint8Array }[];

  /** model.predict on `input` with `batch` examples, flattened. */
  const predict = (input: Float32Array, batch: number): number[] =>
    tf.tidy(() => Array.from((model.predict(tf.tensor(input, [batch, H, W, C])) as tf.Tensor).dataSync()));

  beforeAll(async () => {
    await initBackend({ backend: 'cpu' });
    const input = tf.input({ shape: [H, W, C], name: 'pixels' });
    const flat = tf.layers.flatten().apply(input) as tf.SymbolicTensor;
    const probs = tf.layers
      .dense({ units: CLASSES, activation: 'softmax', name: 'probs', kernelInitializer: 'glorotUniform' })
      .apply(flat) as tf.SymbolicTensor;
    model = tf.model({ inputs: input, outputs: probs, name: MODEL });
    const service = localInferenceService(model, { name: MODEL });
    app = createHttpApi(service, { bodyLimitBytes: BODY_LIMIT, requestTimeoutMs: 30_000, statusPage: false });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const address = app.server.address();
    if (address === null || typeof address === 'string') throw new Error('no port');
    baseUrl = `http://127.0.0.1:${address.port}`;
    const g = prng(99);
    images = [];
    for (let i = 0; i < 4; i++) {
      const pixels = Uint8Array.from({ length: EXAMPLE }, () => Math.floor(g() * 256));
      const png = await sharp(Buffer.from(pixels), { raw: { width: W, height: H, channels: C } })
        .png()
        .toBuffer();
      images.push({ png, pixels });
    }
  });

  afterAll(async () => {
    await app?.close();
  });

  /** Checks a valid request's answer against model.predict; returns a problem, or undefined. */
  function checkValid(c: Case, answer: Answer): string | undefined {
    const e = c.expect!;
    if (answer.status !== 200) return `status ${answer.status}: ${answer.body.toString().slice(0, 200)}`;
    if (e.kind === 'metadata') {
      const meta = JSON.parse(answer.body.toString()) as { name: string; inputs: { shape: number[] }[] };
      return meta.name === MODEL && JSON.stringify(meta.inputs[0]!.shape) === JSON.stringify([-1, H, W, C])
        ? undefined
        : `metadata ${answer.body.toString()}`;
    }
    if (e.kind === 'ready') return undefined;
    if (e.kind === 'simple' || e.kind === 'image') {
      const input = e.kind === 'simple' ? e.input : Float32Array.from(e.pixels, (p) => p / 255);
      const batch = e.kind === 'simple' ? e.batch : 1;
      const expected = predict(input, batch);
      const body = JSON.parse(answer.body.toString()) as {
        predictions: { top: { index: number; score: number }[] }[];
      };
      if (body.predictions.length !== batch) return `predictions for ${body.predictions.length} examples`;
      for (let n = 0; n < batch; n++) {
        const probs = expected.slice(n * CLASSES, (n + 1) * CLASSES);
        const top = body.predictions[n]!.top;
        if (JSON.stringify(top.map((t) => t.index)) !== JSON.stringify(top5(probs)))
          return `top-5 order of example ${n}`;
        if (
          !close(
            top.map((t) => t.score),
            top5(probs).map((i) => probs[i]!),
          )
        )
          return `top-5 scores of example ${n}`;
      }
      return undefined;
    }
    const expected = predict(e.input, e.batch);
    let response: {
      id?: string;
      outputs: {
        name: string;
        shape: number[];
        data?: number[];
        parameters?: { binary_data_size: number };
      }[];
    };
    let data: number[];
    if (e.binaryOutput) {
      const headerLength = Number(answer.headers['inference-header-content-length']);
      response = JSON.parse(answer.body.subarray(0, headerLength).toString());
      const raw = answer.body.subarray(headerLength);
      const copy = new Uint8Array(raw);
      data = Array.from(new Float32Array(copy.buffer, 0, copy.byteLength / 4));
      if (response.outputs[0]!.parameters?.binary_data_size !== raw.length)
        return 'binary_data_size of the answer';
    } else {
      response = JSON.parse(answer.body.toString());
      data = response.outputs[0]!.data!;
    }
    if (e.id !== undefined && response.id !== e.id) return `id ${response.id}`;
    if (JSON.stringify(response.outputs[0]!.shape) !== JSON.stringify([e.batch, CLASSES]))
      return 'output shape';
    return close(data, expected) ? undefined : 'output values differ from model.predict';
  }

  /** Checks a malformed request's answer: a 4xx with a JSON error message. */
  function checkMalformed(c: Case, answer: Answer): string | undefined {
    if (answer.status < 400 || answer.status > 499)
      return `status ${answer.status}: ${answer.body.toString().slice(0, 300)}`;
    if (c.method === 'HEAD') return undefined; // no body by definition
    const type = String(answer.headers['content-type'] ?? '');
    if (!type.includes('application/json')) return `content-type "${type}"`;
    try {
      const body = JSON.parse(answer.body.toString()) as { error?: unknown };
      return typeof body.error === 'string' && body.error.length > 0
        ? undefined
        : `no error message: ${answer.body}`;
    } catch {
      return `body is not JSON: ${answer.body.toString().slice(0, 100)}`;
    }
  }

  async function withDeadline<T>(promise: Promise<T>, what: string): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`hang: ${what} got no answer in ${HANG_MS} ms`)), HANG_MS);
    });
    try {
      return await Promise.race([promise, deadline]);
    } finally {
      clearTimeout(timer);
    }
  }

  async function viaInject(c: Case): Promise<Answer> {
    const response = await withDeadline(
      app.inject({
        method: c.method,
        url: c.url,
        headers: c.headers,
        ...(c.payload === undefined ? {} : { payload: c.payload }),
      }),
      `${c.method} ${c.url}`,
    );
    return { status: response.statusCode, headers: response.headers, body: response.rawPayload };
  }

  async function viaHttp(c: Case): Promise<Answer> {
    const response = await withDeadline(
      fetch(`${baseUrl}${c.url}`, {
        method: c.method,
        headers: c.headers,
        ...(c.payload === undefined || c.method === 'GET' || c.method === 'HEAD'
          ? {}
          : { body: typeof c.payload === 'string' ? c.payload : new Uint8Array(c.payload) }),
      }),
      `${c.method} ${c.url}`,
    );
    const body = Buffer.from(await response.arrayBuffer());
    const headers: Record<string, string> = {};
    response.headers.forEach((value, key) => {
      headers[key] = value;
    });
    return { status: response.status, headers, body };
  }

  /** Runs `count` malformed requests with a valid one every few; returns counts per category. */
  async function campaign(
    seed: number,
    count: number,
    send: (c: Case) => Promise<Answer>,
    usable: (c: Case) => boolean = () => true,
  ) {
    const g = new Generator(seed, images);
    const stats = new Map<string, { count: number; statuses: Map<number, number>; sample?: string }>();
    const failures: string[] = [];
    let malformed = 0;
    while (malformed < count) {
      const c = g.random() < 0.2 ? g.valid() : g.malformed();
      if (!usable(c)) continue;
      const answer = await send(c);
      const problem = c.expect === undefined ? checkMalformed(c, answer) : checkValid(c, answer);
      if (c.expect === undefined) malformed++;
      const entry = stats.get(c.category) ?? { count: 0, statuses: new Map<number, number>() };
      entry.count++;
      entry.statuses.set(answer.status, (entry.statuses.get(answer.status) ?? 0) + 1);
      if (entry.sample === undefined && c.expect === undefined && c.method !== 'HEAD') {
        const message = (JSON.parse(answer.body.toString()) as { error: string }).error;
        entry.sample = message.replace(/[^\x20-\x7e]/g, '?').slice(0, 110);
      }
      stats.set(c.category, entry);
      if (problem !== undefined && failures.length < 20) {
        const payload = c.payload === undefined ? '' : c.payload.toString().slice(0, 160);
        failures.push(
          `[${c.category}] ${c.method} ${c.url} ${JSON.stringify(c.headers)} ${JSON.stringify(payload)}: ${problem}`,
        );
      }
    }
    return { stats, failures };
  }

  function printStats(
    title: string,
    stats: Map<string, { count: number; statuses: Map<number, number>; sample?: string }>,
  ): void {
    const lines = [...stats]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([category, { count, statuses, sample }]) => {
        const byStatus = [...statuses]
          .sort(([a], [b]) => a - b)
          .map(([s, n]) => `${s}x${n}`)
          .join(' ');
        const example = sample === undefined ? '' : `  e.g. "${sample}"`;
        return `  ${category.padEnd(16)} ${String(count).padStart(5)}  ${byStatus.padEnd(18)}${example}`;
      });
    const total = [...stats.values()].reduce((a, s) => a + s.count, 0);
    console.log(`${title}: ${total} requests\n${lines.join('\n')}`);
  }

  it('answers 1,100 injected malformed requests with 4xx JSON errors, and the valid ones correctly', async () => {
    // Warm-up: the first inferences allocate what the backend keeps (e.g. weights on the device).
    const warm = new Generator(1, images);
    for (let i = 0; i < 5; i++) {
      const c = warm.valid();
      expect(checkValid(c, await viaInject(c))).toBeUndefined();
    }
    const tensorsBefore = tf.memory().numTensors;
    const { stats, failures } = await campaign(20_240_601, 1_100, viaInject);
    printStats('inject', stats);
    expect(failures).toEqual([]);
    const malformed = [...stats].filter(([k]) => k !== 'valid').reduce((a, [, s]) => a + s.count, 0);
    expect(malformed).toBe(1_100);
    expect(stats.get('valid')?.count ?? 0).toBeGreaterThan(150);
    for (const category of [
      'bad-json',
      'wrong-types',
      'nan-infinity',
      'wrong-shape',
      'wrong-dtype',
      'huge-dims',
      'negative-dims',
      'truncated-binary',
      'lying-header',
      'oversized',
      'corrupt-image',
      'content-type',
      'unknown-model',
      'unknown-route',
    ]) {
      expect(stats.get(category)?.count ?? 0, category).toBeGreaterThan(40);
    }
    expect(tf.memory().numTensors).toBe(tensorsBefore);
  }, 60_000);

  it('does the same over a real socket', async () => {
    const tensorsBefore = tf.memory().numTensors;
    // fetch refuses some header values and bodies on GET; those cases stay with inject.
    const usable = (c: Case) =>
      Object.values(c.headers).every((v) => /^[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?$/.test(v)) &&
      !(c.payload !== undefined && (c.method === 'GET' || c.method === 'HEAD')) &&
      c.method !== 'OPTIONS';
    const { stats, failures } = await campaign(77, 100, viaHttp, usable);
    printStats('http', stats);
    expect(failures).toEqual([]);
    expect(stats.get('valid')?.count ?? 0).toBeGreaterThan(10);

    // A chunked body (no content-length) that grows past the limit is cut off with 413.
    const big = new Uint8Array(BODY_LIMIT / 4);
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < 8; i++) controller.enqueue(big);
        controller.close();
      },
    });
    const response = await withDeadline(
      fetch(`${baseUrl}${V2}`, {
        method: 'POST',
        headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': '10' },
        body: stream,
        duplex: 'half',
      } as RequestInit),
      'chunked oversized body',
    );
    expect(response.status).toBe(413);
    expect(((await response.json()) as { error: string }).error).toContain('exceeds the limit');
    expect(tf.memory().numTensors).toBe(tensorsBefore);
  }, 60_000);
});
