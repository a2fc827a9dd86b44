/**
 * Reading and writing values at a path of a plain config document.
 *
 * @module
 */
import type { ConfigPath } from './issues.js';

/** The value at `path`, or `undefined` when some key on the way is missing. */
export function getAt(document: unknown, path: ConfigPath): unknown {
  let node = document;
  for (const key of path) {
    if (typeof node !== 'object' || node === null) return undefined;
    node = (node as Record<string | number, unknown>)[key];
  }
  return node;
}

/** Sets the value at `path`, making the objects on the way. */
export function setAt(document: Record<string, unknown>, path: ConfigPath, value: unknown): void {
  let node = document;
  path.forEach((key, i) => {
    if (i === path.length - 1) node[key] = value;
    else {
      const next = (node[key] ?? {}) as Record<string, unknown>;
      node[key] = next;
      node = next;
    }
  });
}
