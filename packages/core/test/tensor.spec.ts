import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { DinferErrorCode } from '../src/errors.js';
import { initBackend } from '../src/node/backend.js';
import {
  float16BitsToNumber,
  float16ToFloat32,
  float32BitsToFloat16Bits,
  float32ToFloat16,
} from '../src/tensor/fp16.js';
import { dequantizeInt8, int8Parameters, quantizeInt8 } from '../src/tensor/int8.js';
import { fromTfTensor, toTfTensor } from '../src/tensor/tfjs.js';
import type { TensorData } from '../src/tensor/types.js';
import { seededRandom as rng } from '../src/testing/seeded-random.js';

// Independent reference: the finite non-negative float16 values, written from the format's
// definition (subnormal m * 2^-24; normal (1024 + m) * 2^(e - 25)), in increasing order.
const HALF_VALUES: number[] = [];
for (let h = 0; h < 0x7c00; h++) {
  const e = h >> 10;
  const m = h & 1023;
  HALF_VALUES.push(e === 0 ? m * 2 ** -24 : (1024 + m) * 2 ** (e - 25));
}

/** Reference float -> float16 bits: nearest by search, ties to the even code, >= 65520 -> inf. */
function referenceHalfBits(x: number): number {
  if (Number.isNaN(x)) return -1;
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a >= 65520) return sign | 0x7c00;
  let lo = 0;
  let hi = HALF_VALUES.length - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (HALF_VALUES[mid]! <= a) lo = mid;
    else hi = mid;
  }
  const dLo = a - HALF_VALUES[lo]!;
  const dHi = HALF_VALUES[hi]! - a;
  const h = dLo < dHi ? lo : dHi < dLo ? hi : lo % 2 === 0 ? lo : hi;
  return sign | h;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
function bitsOf(x: number): number {
  f32[0] = x;
  return u32[0]!;
}

describe('fp16', () => {
  it('decodes known float16 codes', () => {
    const table: Array<[number, number]> = [
      [0x0000, 0],
      [0x0001, 2 ** -24],
      [0x03ff, 1023 * 2 ** -24],
      [0x0400, 6.103515625e-5],
      [0x3555, 0.333251953125],
      [0x3bff, 0.99951171875],
      [0x3c00, 1],
      [0x3c01, 1.0009765625],
      [0x4000, 2],
      [0x7bff, 65504],
      [0xc000, -2],
      [0x7c00, Number.POSITIVE_INFINITY],
      [0xfc00, Number.NEGATIVE_INFINITY],
    ];
    for (const [h, value] of table) expect(float16BitsToNumber(h)).toBe(value);
    expect(Object.is(float16BitsToNumber(0x8000), -0)).toBe(true);
    expect(float16BitsToNumber(0x7e00)).toBeNaN();
    expect(float16BitsToNumber(0x7c01)).toBeNaN();
  });

  it('round-trips every float16 code exactly (NaN stays NaN)', () => {
    const codes = new Uint16Array(0x10000).map((_, i) => i);
    const back = float32ToFloat16(float16ToFloat32(codes));
    for (let h = 0; h < 0x10000; h++) {
      const nan = (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
      if (nan) expect(back[h]! & 0x7c00).toBe(0x7c00);
      else expect(back[h]).toBe(h);
      if (nan) expect(back[h]! & 0x3ff).not.toBe(0);
    }
  });

  it('rounds every midpoint between adjacent float16 values to the even code', () => {
    for (let h = 0; h + 1 < HALF_VALUES.length; h++) {
      const mid = (HALF_VALUES[h]! + HALF_VALUES[h + 1]!) / 2;
      expect(Math.fround(mid)).toBe(mid);
      const expected = h % 2 === 0 ? h : h + 1;
      expect(float32BitsToFloat16Bits(bitsOf(mid))).toBe(expected);
      expect(float32BitsToFloat16Bits(bitsOf(-mid))).toBe(0x8000 | expected);
    }
  });

  it('matches the reference on 200 000 random float32 bit patterns and on the range edges', () => {
    const random = rng(7);
    const samples: number[] = [
      65504,
      65519.99,
      65520,
      65536,
      1e10,
      2 ** -24,
      2 ** -25,
      2 ** -25 * 1.0001,
      2 ** -26,
      1e-30,
      -0,
      0,
    ];
    for (let i = 0; i < 200_000; i++) {
      // Half the samples concentrate on float32 exponents near the float16 range.
      const exponent = i % 2 === 0 ? Math.floor(random() * 256) : 95 + Math.floor(random() * 50);
      const bits =
        ((random() < 0.5 ? 0 : 0x80000000) | (exponent << 23) | Math.floor(random() * 0x800000)) >>> 0;
      u32[0] = bits;
      samples.push(f32[0]!);
    }
    let checked = 0;
    for (const x of samples) {
      const bits = bitsOf(x);
      const got = float32BitsToFloat16Bits(bits);
      if (Number.isNaN(x)) {
        expect(got & 0x7c00).toBe(0x7c00);
        expect(got & 0x3ff).not.toBe(0);
        continue;
      }
      expect(got, `x=${x}`).toBe(referenceHalfBits(x));
      checked += 1;
    }
    expect(checked).toBeGreaterThan(190_000);
  });
});

describe('int8', () => {
  it('keeps every value within scale/2 of the original and zero exact', () => {
    const random = rng(3);
    for (const [lo, hi] of [
      [-1, 1],
      [0, 10],
      [-500, -0.5],
      [3, 3.5],
      [-1e-3, 2e-3],
    ] as const) {
      const values = new Float32Array(5000).map(() => lo + (hi - lo) * random());
      values[0] = 0;
      const q = int8Parameters(values);
      const restored = dequantizeInt8(quantizeInt8(values, q), q);
      const bound = (q.scale / 2) * (1 + 1e-6) + Math.abs(hi) * 2 ** -23;
      let worst = 0;
      for (let i = 0; i < values.length; i++) worst = Math.max(worst, Math.abs(restored[i]! - values[i]!));
      expect(worst).toBeLessThanOrEqual(bound);
      expect(restored[0]).toBe(0);
      // The range (widened to include 0) spans 255 steps.
      const max = Math.max(0, ...values);
      const min = Math.min(0, ...values);
      expect(q.scale).toBeCloseTo((max - min) / 255, 12);
      expect(Number.isInteger(q.zeroPoint) && q.zeroPoint >= -128 && q.zeroPoint <= 127).toBe(true);
    }
  });

  it('handles constant tensors and refuses NaN or infinity', () => {
    for (const c of [0, 5, -7.25]) {
      const values = new Float32Array(10).fill(c);
      const q = int8Parameters(values);
      const restored = dequantizeInt8(quantizeInt8(values, q), q);
      for (const v of restored) expect(Math.abs(v - c)).toBeLessThanOrEqual(q.scale / 2 + 1e-6);
    }
    expect(() => int8Parameters(new Float32Array([1, Number.NaN]))).toThrow(
      expect.objectContaining({ code: DinferErrorCode.TENSOR_INVALID }),
    );
    expect(() => int8Parameters(new Float32Array([Number.POSITIVE_INFINITY]))).toThrow(/finite/);
  });
});

describe('toTfTensor / fromTfTensor', () => {
  beforeAll(async () => {
    await initBackend();
  });

  const cases: TensorData[] = [
    { dtype: 'float32', shape: [2, 3], data: new Float32Array([1.5, -2, 3, 0, 1e-7, 65504]) },
    { dtype: 'int32', shape: [3], data: new Int32Array([-2147483648, 0, 2147483647]) },
    { dtype: 'bool', shape: [2, 2], data: new Uint8Array([1, 0, 0, 1]) },
    { dtype: 'float32', shape: [0, 4], data: new Float32Array(0) },
    { dtype: 'float32', shape: [], data: new Float32Array([42]) },
  ];

  it.each(cases.map((c) => [c.dtype, c.shape.join('x') || 'scalar', c] as const))(
    'round-trips %s [%s] without leaking tensors',
    async (_d, _s, data) => {
      const before = tf.memory().numTensors;
      const tensor = toTfTensor(data);
      expect(tensor.dtype).toBe(data.dtype);
      expect(tensor.shape).toEqual(data.shape);
      const back = await fromTfTensor(tensor, 'x');
      tensor.dispose();
      expect(back.name).toBe('x');
      expect(back.dtype).toBe(data.dtype);
      expect(back.shape).toEqual(data.shape);
      expect([...back.data]).toEqual([...data.data]);
      expect(tf.memory().numTensors).toBe(before);
    },
  );

  it('turns uint8 into int32 values and refuses string tensors', async () => {
    const tensor = toTfTensor({ dtype: 'uint8', shape: [3], data: new Uint8Array([0, 128, 255]) });
    expect(tensor.dtype).toBe('int32');
    expect([...(await tensor.data())]).toEqual([0, 128, 255]);
    tensor.dispose();
    const strings = tf.tensor(['a', 'b']);
    await expect(fromTfTensor(strings)).rejects.toMatchObject({ code: DinferErrorCode.TENSOR_INVALID });
    strings.dispose();
  });
});
