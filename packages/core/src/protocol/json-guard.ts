/**
 * Structural checks for JSON values that arrive from the network, run before any field is
 * read: plain data only, bounded depth and size, and no keys that could reach an object's
 * prototype if the value were later merged into another object.
 *
 * @module
 */
import { DinferError, DinferErrorCode } from '../errors.js';

/** Limits for {@link assertSafeJson}. */
export interface JsonLimits {
  /** Deepest nesting of objects and arrays allowed (the root is depth 1). Default 32. */
  readonly maxDepth?: number | undefined;
  /** Most values (objects, arrays, primitives) allowed in total. Default 100 000. */
  readonly maxNodes?: number | undefined;
  /** Longest string allowed, in UTF-16 code units. Default 1 MiB. */
  readonly maxStringLength?: number | undefined;
}

/** Keys never accepted in a header: they can reach `Object.prototype` through a later merge. */
export const FORBIDDEN_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);

/**
 * Throws `DINFER_ERR_PROTOCOL` unless `value` is plain JSON data (null, boolean, finite
 * number, string, array, or plain object) within `limits` and free of {@link FORBIDDEN_KEYS}.
 * Walks iteratively, so a deeply nested hostile value cannot overflow the stack.
 *
 * @param what names the value in error messages, e.g. `'message header'`.
 */
export function assertSafeJson(value: unknown, what: string, limits: JsonLimits = {}): void {
  const maxDepth = limits.maxDepth ?? 32;
  const maxNodes = limits.maxNodes ?? 100_000;
  const maxStringLength = limits.maxStringLength ?? 1 << 20;
  const fail = (reason: string): never => {
    throw new DinferError(DinferErrorCode.PROTOCOL, `invalid ${what}: ${reason}`);
  };
  const stack: Array<{ value: unknown; depth: number }> = [{ value, depth: 1 }];
  let nodes = 0;
  while (stack.length > 0) {
    const item = stack.pop()!;
    nodes += 1;
    if (nodes > maxNodes) fail(`more than ${maxNodes} values`);
    const v = item.value;
    if (v === null || typeof v === 'boolean') continue;
    if (typeof v === 'number') {
      if (!Number.isFinite(v)) fail('non-finite number');
      continue;
    }
    if (typeof v === 'string') {
      if (v.length > maxStringLength) fail(`string longer than ${maxStringLength}`);
      continue;
    }
    if (typeof v !== 'object') fail(`unsupported value of type ${typeof v}`);
    if (item.depth > maxDepth) fail(`nested deeper than ${maxDepth}`);
    if (Array.isArray(v)) {
      for (const element of v) stack.push({ value: element, depth: item.depth + 1 });
      continue;
    }
    const proto = Object.getPrototypeOf(v);
    if (proto !== Object.prototype && proto !== null) fail('not a plain object');
    for (const key of Object.keys(v as object)) {
      if (FORBIDDEN_KEYS.has(key)) fail(`forbidden key "${key}"`);
      stack.push({ value: (v as Record<string, unknown>)[key], depth: item.depth + 1 });
    }
    if (Object.getOwnPropertySymbols(v).length > 0) fail('symbol keys');
  }
}

/** True when `value` is a non-null, non-array object. */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
