import { deflateRawSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { DinferError, DinferErrorCode } from '../src/errors.js';
import { decodeTensors, encodeTensors, HOST_LITTLE_ENDIAN } from '../src/tensor/codec.js';
import { float16BitsToNumber } from '../src/tensor/fp16.js';
import type { TensorData } from '../src/tensor/types.js';
import { seededRandom as rng } from '../src/testing/seeded-random.js';

const LIMITS = { maxBytes: 64 * 1024 * 1024 };

function sample(dtype: TensorData['dtype'], shape: number[], seed = 1): TensorData {
  const random = rng(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  switch (dtype) {
    case 'float32':
      return { dtype, shape, data: new Float32Array(n).map(() => (random() - 0.5) * 100) };
    case 'int32':
      return { dtype, shape, data: new Int32Array(n).map(() => Math.floor((random() - 0.5) * 2 ** 32)) };
    case 'bool':
      return { dtype, shape, data: new Uint8Array(n).map(() => (random() < 0.5 ? 0 : 1)) };
    case 'uint8':
      return { dtype, shape, data: new Uint8Array(n).map(() => Math.floor(random() * 256)) };
  }
}

function expectCode(fn: () => unknown, code: DinferErrorCode, message?: RegExp): void {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(DinferError);
    expect((error as DinferError).code, (error as Error).message).toBe(code);
    if (message) expect((error as Error).message).toMatch(message);
    return;
  }
  throw new Error(`expected ${code}`);
}

/** A copy of `bytes` placed at an odd offset of a larger buffer (misaligned for 4-byte views). */
function misaligned(bytes: Uint8Array): Uint8Array {
  const backing = new Uint8Array(bytes.byteLength + 3);
  backing.set(bytes, 1);
  return backing.subarray(1, 1 + bytes.byteLength);
}

describe('encodeTensors / decodeTensors', () => {
  const shapes = [[], [0], [1], [3, 0, 2], [7], [2, 3, 4], [1, 17, 5]];
  for (const dtype of ['float32', 'int32', 'bool', 'uint8'] as const) {
    it(`round-trips ${dtype} tensors of every shape exactly`, () => {
      const tensors = shapes.map((shape, i) => ({ ...sample(dtype, shape, i + 1), name: `t${i}` }));
      const { descriptors, attachments } = encodeTensors(tensors);
      const wire = JSON.parse(JSON.stringify(descriptors));
      const decoded = decodeTensors(wire, attachments.map(misaligned), LIMITS);
      decoded.forEach((t, i) => {
        expect(t.name).toBe(`t${i}`);
        expect(t.dtype).toBe(dtype);
        expect(t.shape).toEqual(shapes[i]);
        expect(t.data.constructor).toBe(tensors[i]!.data.constructor);
        expect([...t.data]).toEqual([...tensors[i]!.data]);
      });
    });
  }

  it('writes little-endian bytes', () => {
    const { attachments } = encodeTensors([
      { dtype: 'float32', shape: [1], data: new Float32Array([1]) },
      { dtype: 'int32', shape: [1], data: new Int32Array([0x01020304]) },
    ]);
    expect(HOST_LITTLE_ENDIAN).toBe(true);
    expect([...attachments[0]!]).toEqual([0, 0, 0x80, 0x3f]);
    expect([...attachments[1]!]).toEqual([4, 3, 2, 1]);
    const fp16 = encodeTensors([{ dtype: 'float32', shape: [2], data: new Float32Array([1, -2]) }], {
      encoding: 'fp16',
    });
    expect([...fp16.attachments[0]!]).toEqual([0x00, 0x3c, 0x00, 0xc0]);
  });

  it('views aligned attachments without copying and copies misaligned ones', () => {
    const t = sample('float32', [16]);
    const { descriptors, attachments } = encodeTensors([t]);
    const wire = new Uint8Array(new ArrayBuffer(128), 8, 64);
    wire.set(attachments[0]!);
    const [viewed] = decodeTensors(descriptors, [wire], LIMITS);
    expect(viewed!.data.buffer).toBe(wire.buffer);
    const odd = misaligned(attachments[0]!);
    const [copied] = decodeTensors(descriptors, [odd], LIMITS);
    expect(copied!.data.buffer).not.toBe(odd.buffer);
    expect([...copied!.data]).toEqual([...t.data]);
  });

  it('encodes float32 as fp16 (only float32; other dtypes stay exact)', () => {
    const t: TensorData = {
      dtype: 'float32',
      shape: [6],
      data: new Float32Array([0, 1, 1 / 3, 65504, 1e6, -1e-8]),
    };
    const ints = sample('int32', [4]);
    const { descriptors, attachments } = encodeTensors([t, ints], { encoding: 'fp16' });
    expect(descriptors.map((d) => d.encoding)).toEqual(['fp16', 'none']);
    expect(descriptors[0]!.byteLength).toBe(12);
    const [half, exact] = decodeTensors(descriptors, attachments.map(misaligned), LIMITS);
    expect([...half!.data]).toEqual([0, 1, float16BitsToNumber(0x3555), 65504, Number.POSITIVE_INFINITY, -0]);
    expect([...exact!.data]).toEqual([...ints.data]);
  });

  it('encodes float32 as affine int8 within scale/2', () => {
    const t = sample('float32', [1000], 9);
    const { descriptors, attachments } = encodeTensors([t], { encoding: 'int8' });
    const d = descriptors[0]!;
    expect(d.encoding).toBe('int8');
    expect(d.byteLength).toBe(1000);
    const [back] = decodeTensors(JSON.parse(JSON.stringify(descriptors)), attachments, LIMITS);
    const bound = (d.quantization!.scale / 2) * (1 + 1e-6);
    t.data.forEach((v, i) => {
      expect(Math.abs(back!.data[i]! - v)).toBeLessThanOrEqual(bound);
    });
  });

  it('deflates compressible attachments above the threshold and keeps incompressible ones raw', () => {
    const zeros: TensorData = { dtype: 'float32', shape: [4096], data: new Float32Array(4096) };
    const noise = sample('uint8', [4096], 5);
    const small: TensorData = { dtype: 'int32', shape: [8], data: new Int32Array(8) };
    const { descriptors, attachments } = encodeTensors([zeros, noise, small], { deflateAboveBytes: 1024 });
    expect(descriptors.map((d) => d.compression)).toEqual(['deflate', 'none', 'none']);
    expect(attachments[0]!.byteLength).toBeLessThan(200);
    const decoded = decodeTensors(descriptors, attachments, LIMITS);
    expect([...decoded[0]!.data]).toEqual([...zeros.data]);
    expect([...decoded[1]!.data]).toEqual([...noise.data]);
    const fp16 = encodeTensors([zeros], { encoding: 'fp16', deflateAboveBytes: 0 });
    expect(fp16.descriptors[0]!.compression).toBe('deflate');
    expect([...decodeTensors(fp16.descriptors, fp16.attachments, LIMITS)[0]!.data]).toEqual([...zeros.data]);
  });

  it('stops a deflate bomb at the declared size', () => {
    const bomb = deflateRawSync(Buffer.alloc(16 * 1024 * 1024));
    expect(bomb.byteLength).toBeLessThan(64 * 1024);
    const descriptor = {
      dtype: 'float32',
      shape: [16],
      byteLength: bomb.byteLength,
      encoding: 'none',
      compression: 'deflate',
    };
    expectCode(
      () => decodeTensors([descriptor], [bomb], LIMITS),
      DinferErrorCode.TENSOR_INVALID,
      /inflates beyond/,
    );
    // Declaring the real size is refused by the limit before inflating anything.
    const honest = { ...descriptor, shape: [4 * 1024 * 1024] };
    expectCode(
      () => decodeTensors([honest], [bomb], { maxBytes: 1024 * 1024 }),
      DinferErrorCode.TENSOR_INVALID,
      /exceed/,
    );
    const short = deflateRawSync(Buffer.alloc(10));
    expectCode(
      () => decodeTensors([{ ...descriptor, byteLength: short.byteLength }], [short], LIMITS),
      DinferErrorCode.TENSOR_INVALID,
      /inflated to 10 bytes/,
    );
    expectCode(
      () => decodeTensors([{ ...descriptor, byteLength: 3 }], [new Uint8Array([1, 2, 3])], LIMITS),
      DinferErrorCode.TENSOR_INVALID,
    );
  });

  const good = { dtype: 'float32', shape: [2, 2], byteLength: 16, encoding: 'none', compression: 'none' };
  const att = [new Uint8Array(16)];
  it.each([
    ['a negative dimension', { ...good, shape: [-2, -2] }, /non-negative integers/],
    ['a fractional dimension', { ...good, shape: [2.5, 2] }, /non-negative integers/],
    ['a NaN dimension (null in JSON)', { ...good, shape: [null, 2] }, /non-negative integers/],
    ['a string dimension', { ...good, shape: ['2', 2] }, /non-negative integers/],
    ['a huge product', { ...good, shape: [2 ** 40, 2 ** 40, 2 ** 40] }, /exceed|elements/],
    ['too many dimensions', { ...good, shape: [1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2] }, /rank 11/],
    ['an unknown dtype', { ...good, dtype: 'float64' }, /unsupported dtype/],
    ['the string dtype', { ...good, dtype: 'string' }, /unsupported dtype/],
    ['a byteLength mismatch', { ...good, byteLength: 12 }, /does not match/],
    ['an unknown encoding', { ...good, encoding: 'bf16' }, /unsupported encoding/],
    ['fp16 on int32', { ...good, dtype: 'int32', encoding: 'fp16', byteLength: 8 }, /float32 only/],
    ['int8 without quantization', { ...good, encoding: 'int8', byteLength: 4 }, /quantization/],
    ['quantization without int8', { ...good, quantization: { scale: 1, zeroPoint: 0 } }, /quantization/],
    [
      'a zero scale',
      { ...good, encoding: 'int8', byteLength: 4, quantization: { scale: 0, zeroPoint: 0 } },
      /scale/,
    ],
    [
      'a zeroPoint out of range',
      { ...good, encoding: 'int8', byteLength: 4, quantization: { scale: 1, zeroPoint: 200 } },
      /zeroPoint/,
    ],
    ['an unknown compression', { ...good, compression: 'gzip' }, /unsupported compression/],
    ['an extra field', { ...good, offset: 0 }, /unexpected field/],
    ['a long name', { ...good, name: 'x'.repeat(300) }, /name/],
  ])('rejects a descriptor with %s as TENSOR_INVALID', (_n, descriptor, message) => {
    expectCode(() => decodeTensors([descriptor], att, LIMITS), DinferErrorCode.TENSOR_INVALID, message);
  });

  it('rejects structural faults as PROTOCOL', () => {
    expectCode(() => decodeTensors({ 0: good }, att, LIMITS), DinferErrorCode.PROTOCOL);
    expectCode(() => decodeTensors([null], att, LIMITS), DinferErrorCode.PROTOCOL);
    expectCode(() => decodeTensors([good], [], LIMITS), DinferErrorCode.PROTOCOL, /attachments/);
    expectCode(() => decodeTensors([good], [att[0]!, att[0]!], LIMITS), DinferErrorCode.PROTOCOL);
    expectCode(
      () => decodeTensors([JSON.parse('{"__proto__": {"x": 1}}')], att, LIMITS),
      DinferErrorCode.PROTOCOL,
      /__proto__/,
    );
  });

  it('enforces maxBytes over all tensors, maxElements, maxTensors and the attachment size', () => {
    const two = [good, good];
    expectCode(
      () => decodeTensors(two, [att[0]!, att[0]!], { maxBytes: 31 }),
      DinferErrorCode.TENSOR_INVALID,
      /31 bytes/,
    );
    expect(decodeTensors(two, [att[0]!, att[0]!], { maxBytes: 32 })).toHaveLength(2);
    expectCode(
      () => decodeTensors([good], att, { maxBytes: 100, maxElements: 3 }),
      DinferErrorCode.TENSOR_INVALID,
    );
    expectCode(
      () => decodeTensors(two, [att[0]!, att[0]!], { maxBytes: 100, maxTensors: 1 }),
      DinferErrorCode.TENSOR_INVALID,
    );
    expectCode(
      () => decodeTensors([good], [new Uint8Array(15)], LIMITS),
      DinferErrorCode.TENSOR_INVALID,
      /attachment has 15/,
    );
  });

  it('rejects bool bytes other than 0 and 1', () => {
    const d = { dtype: 'bool', shape: [3], byteLength: 3, encoding: 'none', compression: 'none' };
    expectCode(
      () => decodeTensors([d], [new Uint8Array([0, 1, 2])], LIMITS),
      DinferErrorCode.TENSOR_INVALID,
      /bool/,
    );
  });

  it('refuses to encode inconsistent tensors', () => {
    expectCode(
      () => encodeTensors([{ dtype: 'float32', shape: [3], data: new Float32Array(2) }]),
      DinferErrorCode.TENSOR_INVALID,
      /needs 3 values/,
    );
    expectCode(
      () =>
        encodeTensors([{ dtype: 'int32', shape: [2], data: new Float32Array(2) } as unknown as TensorData]),
      DinferErrorCode.TENSOR_INVALID,
      /Int32Array/,
    );
    expectCode(
      () => encodeTensors([{ dtype: 'string', shape: [1], data: ['a'] } as unknown as TensorData]),
      DinferErrorCode.TENSOR_INVALID,
    );
    expectCode(
      () =>
        encodeTensors([{ dtype: 'float32', shape: [1], data: new Float32Array([Number.NaN]) }], {
          encoding: 'int8',
        }),
      DinferErrorCode.TENSOR_INVALID,
    );
    expectCode(() => encodeTensors([], { encoding: 'bf16' as never }), DinferErrorCode.INVALID_ARGUMENT);
  });

  it('moves a 16 MiB float32 activation without copying it on a little-endian host', () => {
    const t = sample('float32', [4, 1024, 1024], 11);
    const { descriptors, attachments } = encodeTensors([t]);
    expect(attachments[0]!.buffer).toBe(t.data.buffer);
    const [back] = decodeTensors(descriptors, attachments, LIMITS);
    expect(back!.data.buffer).toBe(t.data.buffer);
    expect(back!.data.length).toBe(t.data.length);
  });
});
