import { DinferError, DinferErrorCode } from '@dinfer/core';
import { describe, expect, it } from 'vitest';
import { errorToHttp, HTTP_STATUS_BY_ERROR_CODE } from '../src/errors-to-http.js';
import { readNumericArray } from '../src/http/numeric-array.js';
import { topK } from '../src/http/top-k.js';

/** Builds a nested array of `shape` whose element at flat index i is f(i). */
function nested(shape: readonly number[], f: (i: number) => unknown): unknown {
  let counter = 0;
  const build = (d: number): unknown =>
    d === shape.length ? f(counter++) : Array.from({ length: shape[d]! }, () => build(d + 1));
  return build(0);
}

const refusal = (fn: () => unknown): string => {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(DinferError);
    expect((error as DinferError).code).toBe(DinferErrorCode.INVALID_ARGUMENT);
    return (error as DinferError).message;
  }
  throw new Error('expected a refusal');
};

describe('readNumericArray', () => {
  it('reads nested arrays of every rank in row-major order', () => {
    for (const shape of [[5], [2, 3], [2, 3, 4], [1, 2, 1, 3], [3, 0]]) {
      const size = shape.reduce((a, b) => a * b, 1);
      const { shape: read, data } = readNumericArray(
        nested(shape, (i) => i * 0.5 - 1),
        'float32',
        'x',
      );
      expect(read).toEqual(shape);
      expect(data).toBeInstanceOf(Float32Array);
      expect(Array.from(data)).toEqual(Array.from({ length: size }, (_, i) => i * 0.5 - 1));
    }
  });

  it('reads every dtype and checks its range', () => {
    expect(readNumericArray([[-5, 2147483647]], 'int32', 'x').data).toEqual(new Int32Array([-5, 2147483647]));
    expect(readNumericArray([0, 255], 'uint8', 'x').data).toEqual(new Uint8Array([0, 255]));
    expect(readNumericArray([true, false, true], 'bool', 'x').data).toEqual(new Uint8Array([1, 0, 1]));
    expect(refusal(() => readNumericArray([1.5], 'int32', 'x'))).toMatch(
      /x\[0\] is 1.5; expected an integer/,
    );
    expect(refusal(() => readNumericArray([2147483648], 'int32', 'x'))).toMatch(/INT32 range/);
    expect(refusal(() => readNumericArray([256], 'uint8', 'x'))).toMatch(/0\.\.255/);
    expect(refusal(() => readNumericArray([1], 'bool', 'x'))).toMatch(/expected a boolean/);
    expect(refusal(() => readNumericArray([1e39], 'float32', 'x'))).toMatch(/FP32 range/);
  });

  it('refuses non-numeric leaves, NaN strings, non-finite numbers and ragged arrays, naming the position', () => {
    expect(
      refusal(() =>
        readNumericArray(
          [
            [1, 2],
            [3, 'NaN'],
          ],
          'float32',
          'input',
        ),
      ),
    ).toMatch(/input\[1\]\[1\] is the string "NaN"; expected a finite number/);
    expect(
      refusal(() =>
        readNumericArray(
          [
            [1, 2],
            [3, null],
          ],
          'float32',
          'input',
        ),
      ),
    ).toMatch(/input\[1\]\[1\] is null/);
    expect(refusal(() => readNumericArray([Number.NaN], 'float32', 'input'))).toMatch(/input\[0\] is NaN/);
    expect(refusal(() => readNumericArray([1, Number.POSITIVE_INFINITY], 'float32', 'input'))).toMatch(
      /Infinity/,
    );
    expect(refusal(() => readNumericArray([[1, 2], [3]], 'float32', 'input'))).toMatch(
      /ragged: input\[1\] has 1 elements, expected 2/,
    );
    expect(refusal(() => readNumericArray([[1, 2], 3], 'float32', 'input'))).toMatch(
      /input\[1\] is 3; expected an array/,
    );
    expect(
      refusal(() =>
        readNumericArray(
          [
            [1, 2],
            [3, [4]],
          ],
          'float32',
          'input',
        ),
      ),
    ).toMatch(/ragged/);
    expect(refusal(() => readNumericArray([[[1]], [[2], [3]]], 'float32', 'input'))).toMatch(/ragged/);
    expect(refusal(() => readNumericArray({ a: 1 }, 'float32', 'input'))).toMatch(/must be an array/);
    expect(refusal(() => readNumericArray([[[[[[[[[1]]]]]]]]], 'float32', 'input'))).toMatch(/deeper than 8/);
  });

  it('converts a nested 224x224x3 image value for value, in row-major order', () => {
    // Its speed is measured by bench:pipeline (JSON path), not asserted here.
    const image = nested([224, 224, 3], (i) => (i % 255) / 255);
    const { data, shape } = readNumericArray(image, 'float32', 'input');
    expect(shape).toEqual([224, 224, 3]);
    expect(data.length).toBe(224 * 224 * 3);
    for (const i of [0, 7, 224 * 3 * 10 + 7, 224 * 224 * 3 - 1]) {
      expect(data[i]).toBeCloseTo((i % 255) / 255, 6);
    }
  });
});

describe('topK', () => {
  it('matches a full sort, keeps the lower index first on ties, and reads a slice', () => {
    const values = Float32Array.from([0.1, 0.5, 0.2, 0.5, 0.9, -1, 0.3, 0.05]);
    const bySort = Array.from(values.slice(2, 8), (score, i) => ({ index: i, score }))
      .sort((a, b) => b.score - a.score || a.index - b.index)
      .slice(0, 3);
    expect(topK(values, 2, 6, 3)).toEqual(bySort);
    expect(topK(values, 0, 8, 3).map((c) => c.index)).toEqual([4, 1, 3]);
    expect(topK(values, 0, 2, 5)).toHaveLength(2);
    expect(topK(values, 0, 8, 2, ['a', 'b', 'c', 'd', 'e'])).toEqual([
      { index: 4, label: 'e', score: values[4] },
      { index: 1, label: 'b', score: values[1] },
    ]);
    expect(topK([Number.NaN, 1, 2], 0, 3, 3).map((c) => c.index)).toEqual([2, 1, 0]);
  });
});

describe('errorToHttp', () => {
  it('maps every listed code and defaults to 500 without a stack', () => {
    const expected: [string, number][] = [
      [DinferErrorCode.INVALID_ARGUMENT, 400],
      [DinferErrorCode.TENSOR_INVALID, 400],
      [DinferErrorCode.AUTH_FAILED, 401],
      [DinferErrorCode.FORBIDDEN, 403],
      [DinferErrorCode.UNKNOWN_MODEL, 404],
      [DinferErrorCode.ROLLOUT_FAILED, 422],
      [DinferErrorCode.RATE_LIMITED, 429],
      [DinferErrorCode.OVERLOADED, 503],
      [DinferErrorCode.NO_WORKER, 503],
      [DinferErrorCode.NOT_READY, 503],
      [DinferErrorCode.TIMEOUT, 504],
      [DinferErrorCode.INTERNAL, 500],
      [DinferErrorCode.REMOTE, 500],
    ];
    for (const [code, status] of expected) {
      const answer = errorToHttp(new DinferError(code as DinferErrorCode, `msg ${code}`));
      expect(answer.status).toBe(status);
      expect(answer.body).toEqual({ error: `msg ${code}`, code });
      expect(answer.headers['retry-after'] !== undefined).toBe(status === 503 || status === 429);
      expect(answer.headers['www-authenticate'] !== undefined).toBe(status === 401);
    }
    expect(Object.keys(HTTP_STATUS_BY_ERROR_CODE)).toHaveLength(11);
    const overloaded = new DinferError(DinferErrorCode.OVERLOADED, 'busy', {
      details: { retryAfterMs: 2500 },
    });
    expect(errorToHttp(overloaded).headers['retry-after']).toBe('3');
    expect(errorToHttp(new Error('boom'))).toEqual({ status: 500, body: { error: 'boom' }, headers: {} });
    expect(JSON.stringify(errorToHttp(new Error('boom')))).not.toMatch(/at /);
    expect(errorToHttp(Object.assign(new Error('too big'), { statusCode: 413, code: 'FST_X' })).status).toBe(
      413,
    );
    expect(errorToHttp('string thrown').status).toBe(500);
  });
});
