/**
 * What the JSON path would cost `pnpm bench:pipeline`: one ResNet50 input as a KServe v2 JSON
 * body, nested (as clients send tensors) and flat (row-major), encoded and parsed back the way a
 * server must (shape checked).
 *
 * @module
 */
import type { TensorData } from '@dinfer/core';
import { INPUT_SHAPE } from './bench-inputs.js';
import { median } from './bench-stats.js';

/** The nested-array form a JSON client sends for a [1, 224, 224, 3] tensor. */
function nested(data: Float32Array): number[][][][] {
  const [, h, w, c] = INPUT_SHAPE;
  const rows: number[][][] = [];
  for (let y = 0; y < h; y++) {
    const row: number[][] = [];
    for (let x = 0; x < w; x++) {
      const base = (y * w + x) * c;
      row.push(Array.from(data.subarray(base, base + c)));
    }
    rows.push(row);
  }
  return [rows];
}

/** Flattens a parsed nested array into a Float32Array, checking the shape as a server must. */
function flatten(value: unknown, shape: readonly number[]): Float32Array {
  const out = new Float32Array(shape.reduce((a, b) => a * b, 1));
  let offset = 0;
  const walk = (node: unknown, depth: number): void => {
    if (!Array.isArray(node) || node.length !== shape[depth]) throw new Error(`bad shape at depth ${depth}`);
    if (depth === shape.length - 1) {
      for (const v of node) {
        if (typeof v !== 'number') throw new Error('not a number');
        out[offset++] = v;
      }
      return;
    }
    for (const child of node) walk(child, depth + 1);
  };
  walk(value, 0);
  return out;
}

/** Bytes and median times of the JSON forms of one input. */
export interface JsonCost {
  readonly bytes: number;
  readonly encodeMs: number;
  readonly decodeMs: number;
  readonly flatBytes: number;
  readonly flatEncodeMs: number;
  readonly flatDecodeMs: number;
}

/** Encodes and decodes `input` both ways `runs` times (after one warm-up); medians. */
export function measureJson(input: TensorData, runs: number): JsonCost {
  const data = input.data as Float32Array;
  const encodeMs: number[] = [];
  const decodeMs: number[] = [];
  const flatEncodeMs: number[] = [];
  const flatDecodeMs: number[] = [];
  let bytes = 0;
  let flatBytes = 0;
  for (let run = 0; run <= runs; run++) {
    let t = performance.now();
    const text = JSON.stringify({
      inputs: [{ name: 'input', shape: [...input.shape], datatype: 'FP32', data: nested(data) }],
    });
    const t1 = performance.now();
    const parsed = JSON.parse(text) as { inputs: Array<{ data: unknown; shape: number[] }> };
    const back = flatten(parsed.inputs[0]!.data, parsed.inputs[0]!.shape);
    const t2 = performance.now();
    if (back[back.length - 1] !== data[data.length - 1]) throw new Error('JSON round trip lost values');
    bytes = text.length;
    t = t1 - t;
    // The flat (KServe row-major) form: one long array of numbers.
    const f0 = performance.now();
    const flatText = JSON.stringify({
      inputs: [{ name: 'input', shape: [...input.shape], datatype: 'FP32', data: Array.from(data) }],
    });
    const f1 = performance.now();
    const flatParsed = JSON.parse(flatText) as { inputs: Array<{ data: number[] }> };
    const flatBack = Float32Array.from(flatParsed.inputs[0]!.data);
    const f2 = performance.now();
    if (flatBack.length !== data.length) throw new Error('flat JSON round trip lost values');
    flatBytes = flatText.length;
    if (run === 0) continue; // warm-up
    encodeMs.push(t);
    decodeMs.push(t2 - t1);
    flatEncodeMs.push(f1 - f0);
    flatDecodeMs.push(f2 - f1);
  }
  return {
    bytes,
    encodeMs: median(encodeMs),
    decodeMs: median(decodeMs),
    flatBytes,
    flatEncodeMs: median(flatEncodeMs),
    flatDecodeMs: median(flatDecodeMs),
  };
}
