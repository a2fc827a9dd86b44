/**
 * How an ensemble joins its members' outputs: average, weighted average, vote, or
 * concatenation, optionally followed by a softmax. Pure functions over {@link TensorData}, so
 * they are checked against the same arithmetic on each member's local `predict`.
 *
 * @module
 */
import { DinferError, DinferErrorCode } from '../errors.js';
import type { TensorData } from '../tensor/types.js';

/** The ways an ensemble combines its members' outputs. */
export const ENSEMBLE_COMBINERS = ['average', 'weighted', 'vote', 'concatenate'] as const;

/** One of {@link ENSEMBLE_COMBINERS}. */
export type EnsembleCombiner = (typeof ENSEMBLE_COMBINERS)[number];

/** How to combine, as an ensemble definition states it. */
export interface CombineSpec {
  readonly combiner: EnsembleCombiner;
  /**
   * Weight of each member, in member order: required for `weighted`, optional for `vote`
   * (a weighted vote); positive and finite.
   */
  readonly weights?: readonly number[] | undefined;
  /** Axis of `concatenate` (negative counts from the end). Default -1. */
  readonly axis?: number | undefined;
  /** Apply a softmax over the last axis after combining. Default false. */
  readonly softmax?: boolean | undefined;
}

function invalid(message: string, details: Record<string, unknown> = {}): DinferError {
  return new DinferError(DinferErrorCode.INVALID_ARGUMENT, message, { details });
}

/** Checks a combine spec against the number of members. @throws DinferError INVALID_ARGUMENT */
export function checkCombineSpec(spec: CombineSpec, members: number): void {
  if (!(ENSEMBLE_COMBINERS as readonly string[]).includes(spec.combiner)) {
    throw invalid(
      `ensemble combiner must be one of ${ENSEMBLE_COMBINERS.join(', ')}, got ${JSON.stringify(spec.combiner)}`,
    );
  }
  if (members < 1) throw invalid('an ensemble needs at least one member');
  const weights = spec.weights;
  if (spec.combiner === 'weighted' && weights === undefined) {
    throw invalid('a weighted ensemble needs one weight per member');
  }
  if (weights !== undefined) {
    if (weights.length !== members) {
      throw invalid(`ensemble weights: ${weights.length} given for ${members} members`, {
        weights: weights.length,
        members,
      });
    }
    if (!weights.every((w) => typeof w === 'number' && Number.isFinite(w) && w > 0)) {
      throw invalid('ensemble weights must be positive finite numbers');
    }
  }
  if (spec.axis !== undefined && !Number.isInteger(spec.axis))
    throw invalid('ensemble axis must be an integer');
}

function float32(t: TensorData, what: string): Float32Array {
  if (t.dtype !== 'float32') throw invalid(`${what} is ${t.dtype}; ensembles combine float32 outputs`);
  return t.data as Float32Array;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Softmax over the last axis, in place. */
function softmaxInPlace(data: Float32Array, shape: readonly number[]): void {
  const width = shape[shape.length - 1] ?? 1;
  for (let row = 0; row + width <= data.length; row += width) {
    let max = Number.NEGATIVE_INFINITY;
    for (let i = row; i < row + width; i++) max = Math.max(max, data[i]!);
    let sum = 0;
    for (let i = row; i < row + width; i++) {
      const e = Math.exp(data[i]! - max);
      data[i] = e;
      sum += e;
    }
    for (let i = row; i < row + width; i++) data[i]! /= sum;
  }
}

function weightedMean(parts: readonly Float32Array[], weights: readonly number[]): Float32Array {
  const out = new Float32Array(parts[0]!.length);
  let total = 0;
  parts.forEach((part, m) => {
    const w = weights[m]!;
    total += w;
    for (let i = 0; i < out.length; i++) out[i]! += w * part[i]!;
  });
  for (let i = 0; i < out.length; i++) out[i]! /= total;
  return out;
}

/** Each member's (weighted) vote for the argmax of each row, as a fraction of all votes. */
function votes(
  parts: readonly Float32Array[],
  shape: readonly number[],
  weights: readonly number[],
): Float32Array {
  const width = shape[shape.length - 1] ?? 1;
  const out = new Float32Array(parts[0]!.length);
  const total = weights.reduce((a, b) => a + b, 0);
  for (let row = 0; row + width <= out.length; row += width) {
    parts.forEach((part, m) => {
      let best = row;
      for (let i = row + 1; i < row + width; i++) if (part[i]! > part[best]!) best = i;
      out[best]! += weights[m]! / total;
    });
  }
  return out;
}

function concatenate(parts: readonly TensorData[], axis: number): { shape: number[]; data: Float32Array } {
  const rank = parts[0]!.shape.length;
  const at = axis < 0 ? rank + axis : axis;
  if (at < 0 || at >= rank)
    throw invalid(`ensemble axis ${axis} is out of range for outputs of rank ${rank}`);
  for (const p of parts) {
    if (p.shape.length !== rank || p.shape.some((d, i) => i !== at && d !== parts[0]!.shape[i])) {
      throw invalid(
        `ensemble members' outputs do not concatenate on axis ${axis}: shapes ${parts.map((q) => `[${q.shape.join(', ')}]`).join(', ')}`,
      );
    }
  }
  const outer = parts[0]!.shape.slice(0, at).reduce((a, b) => a * b, 1);
  const inner = parts[0]!.shape.slice(at + 1).reduce((a, b) => a * b, 1);
  const shape = [...parts[0]!.shape];
  shape[at] = parts.reduce((sum, p) => sum + p.shape[at]!, 0);
  const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
  let offset = 0;
  for (let o = 0; o < outer; o++) {
    for (const p of parts) {
      const block = p.shape[at]! * inner;
      data.set(float32(p, 'a member output').subarray(o * block, (o + 1) * block), offset);
      offset += block;
    }
  }
  return { shape, data };
}

/**
 * Combines one output of several members (`parts[m]` is member `m`'s tensor for that output)
 * as `spec` says. `average`, `weighted` and `vote` need equal shapes; `concatenate` equal
 * shapes but on its axis. Returns a new tensor (named like the first member's).
 *
 * @throws DinferError INVALID_ARGUMENT for outputs that do not combine (dtype, shapes).
 */
export function combineOutput(parts: readonly TensorData[], spec: CombineSpec): TensorData {
  if (parts.length === 0) throw invalid('nothing to combine');
  const first = parts[0]!;
  for (const [m, p] of parts.entries()) float32(p, `member ${m}'s output`);
  const weights = spec.weights ?? parts.map(() => 1);
  let shape: number[];
  let data: Float32Array;
  if (spec.combiner === 'concatenate') {
    ({ shape, data } = concatenate(parts, spec.axis ?? -1));
  } else {
    for (const p of parts) {
      if (!sameShape(p.shape, first.shape)) {
        throw invalid(
          `ensemble members' outputs differ in shape: ${parts.map((q) => `[${q.shape.join(', ')}]`).join(', ')}`,
        );
      }
    }
    shape = [...first.shape];
    const values = parts.map((p) => p.data as Float32Array);
    data = spec.combiner === 'vote' ? votes(values, shape, weights) : weightedMean(values, weights);
  }
  if (spec.softmax === true) softmaxInPlace(data, shape);
  return { dtype: 'float32', shape, data, ...(first.name === undefined ? {} : { name: first.name }) };
}

/** Combines every output: `members[m][k]` is member `m`'s output `k`. */
export function combineOutputs(members: readonly (readonly TensorData[])[], spec: CombineSpec): TensorData[] {
  const count = members[0]?.length ?? 0;
  if (members.some((outputs) => outputs.length !== count)) {
    throw invalid(
      `ensemble members give different numbers of outputs: ${members.map((m) => m.length).join(', ')}`,
    );
  }
  return Array.from({ length: count }, (_, k) =>
    combineOutput(
      members.map((outputs) => outputs[k]!),
      spec,
    ),
  );
}
