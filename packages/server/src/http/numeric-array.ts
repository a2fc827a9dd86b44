/**
 * Turns the JSON arrays of a request body into typed arrays: one pass to read the shape from
 * the first element at each depth, one iterative pass (no recursion, no per-element closures)
 * that checks every sub-array against that shape and every leaf against the dtype while it
 * writes the typed array. A nested 224x224x3 image converts in about a millisecond.
 *
 * @module
 */
import {
  DinferError,
  DinferErrorCode,
  type TensorArray,
  type TensorData,
  type TensorDType,
} from '@dinfer/core';
import { elementCount, formatShape } from './shape.js';

/** Deepest nesting accepted in a request array. */
export const MAX_JSON_TENSOR_RANK = 8;

/** A typed array with the shape read from its nested JSON form. */
export interface NumericArray {
  readonly shape: number[];
  readonly data: TensorArray;
}

const FLOAT32_MAX = 3.4028234663852886e38;
const INT32_MIN = -2147483648;
const INT32_MAX = 2147483647;

/** What a leaf must be, per dtype, for messages. */
const EXPECTED: Record<TensorDType, string> = {
  float32: 'a finite number in the FP32 range',
  int32: 'an integer in the INT32 range',
  uint8: 'an integer in 0..255',
  bool: 'a boolean',
};

function bad(message: string, details: Record<string, unknown> = {}): DinferError {
  return new DinferError(DinferErrorCode.INVALID_ARGUMENT, message, { details });
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string')
    return `the string ${JSON.stringify(value.length > 20 ? `${value.slice(0, 20)}...` : value)}`;
  if (typeof value === 'number') return String(value);
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}

function path(what: string, index: readonly number[], depth: number, last?: number): string {
  let text = what;
  for (let d = 0; d <= depth; d++) text += `[${index[d]}]`;
  if (last !== undefined) text += `[${last}]`;
  return text;
}

/** Allocates the typed array for `dtype`. */
function allocate(dtype: TensorDType, size: number): TensorArray {
  switch (dtype) {
    case 'float32':
      return new Float32Array(size);
    case 'int32':
      return new Int32Array(size);
    case 'uint8':
    case 'bool':
      return new Uint8Array(size);
  }
}

/**
 * Copies the leaves of `leaf` into `out` from `pos`; returns the index of the first bad leaf,
 * or -1. One tight loop per dtype keeps the hot path monomorphic.
 */
function writeLeaves(dtype: TensorDType, leaf: readonly unknown[], out: TensorArray, pos: number): number {
  const n = leaf.length;
  switch (dtype) {
    case 'float32':
      for (let i = 0; i < n; i++) {
        const v = leaf[i];
        if (typeof v !== 'number' || v - v !== 0 || v > FLOAT32_MAX || v < -FLOAT32_MAX) return i;
        out[pos + i] = v;
      }
      return -1;
    case 'int32':
      for (let i = 0; i < n; i++) {
        const v = leaf[i];
        if (typeof v !== 'number' || !Number.isInteger(v) || v < INT32_MIN || v > INT32_MAX) return i;
        out[pos + i] = v;
      }
      return -1;
    case 'uint8':
      for (let i = 0; i < n; i++) {
        const v = leaf[i];
        if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 255) return i;
        out[pos + i] = v;
      }
      return -1;
    case 'bool':
      for (let i = 0; i < n; i++) {
        const v = leaf[i];
        if (typeof v !== 'boolean') return i;
        out[pos + i] = v ? 1 : 0;
      }
      return -1;
  }
}

/** Checks made on the shape an array claims (from its first elements) before it is read. */
export interface NumericArrayLimits {
  /**
   * Most values the array can hold: those of the body it came from (see `jsonValueCount`),
   * so first elements that claim more (a ragged array) are refused before anything is
   * allocated. Default: no bound beyond the JSON body's own.
   */
  readonly maxValues?: number | undefined;
  /** Throws when the claimed shape does not fit what the caller expects (the model's input). */
  readonly checkShape?: ((shape: readonly number[]) => void) | undefined;
}

/**
 * Reads a (possibly nested) JSON array of `dtype` values. The shape comes from the nesting;
 * every sub-array must have the length of its siblings (no ragged arrays), every leaf must be
 * a JSON value of the dtype (numbers for FP32/INT32/UINT8, within range; booleans for BOOL:
 * strings such as `"NaN"` are refused). The shape read from the first elements is checked
 * against `limits` before the typed array is allocated.
 *
 * @param what the field name used in messages, e.g. `input` or `inputs[0].data`.
 * @throws DinferError INVALID_ARGUMENT naming the first offending position, or for a shape
 *   `limits` refuses.
 */
export function readNumericArray(
  value: unknown,
  dtype: TensorDType,
  what: string,
  limits: NumericArrayLimits = {},
): NumericArray {
  if (!Array.isArray(value)) throw bad(`${what} must be an array, got ${describe(value)}`);
  const shape: number[] = [];
  let probe: unknown = value;
  while (Array.isArray(probe)) {
    if (shape.length === MAX_JSON_TENSOR_RANK) {
      throw bad(`${what} is nested deeper than ${MAX_JSON_TENSOR_RANK} levels`);
    }
    shape.push(probe.length);
    if (probe.length === 0) break;
    probe = probe[0];
  }
  const rank = shape.length;
  limits.checkShape?.(shape);
  const claimed = elementCount(shape);
  if (limits.maxValues !== undefined && claimed > limits.maxValues) {
    throw bad(
      `${what} claims ${claimed} values, more than the body holds (at most ${limits.maxValues}); shape ` +
        `${formatShape(shape)} was read from its first elements`,
      { claimed, maxValues: limits.maxValues },
    );
  }
  const out = allocate(dtype, claimed);
  const stack: unknown[][] = new Array(rank);
  const index: number[] = new Array<number>(rank).fill(0);
  stack[0] = value;
  let depth = 0;
  let pos = 0;
  for (;;) {
    if (depth < rank - 1) {
      const child = stack[depth]![index[depth]!];
      const want = shape[depth + 1]!;
      if (!Array.isArray(child)) {
        throw bad(
          `${path(what, index, depth)} is ${describe(child)}; expected an array of ${want} (shape ${formatShape(shape)})`,
        );
      }
      if (child.length !== want) {
        throw bad(
          `${what} is ragged: ${path(what, index, depth)} has ${child.length} elements, expected ${want} (shape ${formatShape(shape)})`,
        );
      }
      depth++;
      stack[depth] = child;
      index[depth] = 0;
      continue;
    }
    const leaf = stack[depth]!;
    const badAt = writeLeaves(dtype, leaf, out, pos);
    if (badAt >= 0) {
      const where = rank === 1 ? `${what}[${badAt}]` : path(what, index, depth - 1, badAt);
      const leafValue = leaf[badAt];
      const hint = Array.isArray(leafValue)
        ? ` (${what} is ragged: shape ${formatShape(shape)} was read from its first elements)`
        : '';
      throw bad(`${where} is ${describe(leafValue)}; expected ${EXPECTED[dtype]}${hint}`);
    }
    pos += leaf.length;
    // Climb to the next sibling that remains, then descend again.
    do {
      depth--;
      if (depth < 0) return { shape, data: out };
      index[depth]!++;
    } while (index[depth]! >= shape[depth]!);
  }
}

/** Wraps a typed array read by {@link readNumericArray} as {@link TensorData} of `dtype`. */
export function tensorData(
  name: string,
  dtype: TensorDType,
  shape: readonly number[],
  data: TensorArray,
): TensorData {
  return { name, dtype, shape, data } as TensorData;
}
