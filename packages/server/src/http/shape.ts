/**
 * Shape helpers shared by the HTTP routes: formatting for messages and matching against a
 * model signature (where `null` is a free dimension, normally the batch).
 *
 * @module
 */
import type { SymbolicShape } from '@dinfer/core';

/** Formats a shape the way error messages show it, e.g. `[null,224,224,3]`. */
export function formatShape(shape: readonly (number | null)[]): string {
  return `[${shape.map((d) => (d === null ? 'null' : String(d))).join(',')}]`;
}

/** True when `shape` has the rank of `spec` and equals it on every fixed dimension. */
export function shapeMatches(shape: readonly number[], spec: SymbolicShape): boolean {
  if (shape.length !== spec.length) return false;
  for (let i = 0; i < shape.length; i++) {
    const want = spec[i];
    if (want !== null && want !== undefined && want !== shape[i]) return false;
  }
  return true;
}

/** Number of elements of a shape. */
export function elementCount(shape: readonly number[]): number {
  let size = 1;
  for (const d of shape) size *= d;
  return size;
}
