/**
 * Small statistics for the benches.
 *
 * @module
 */

/** Median of `values` (NaN when empty). */
export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Arithmetic mean of `values` (0 when empty). */
export function mean(values: readonly number[]): number {
  return values.length === 0 ? 0 : values.reduce((a, b) => a + b, 0) / values.length;
}

/** `median (min-max)` of `values`, with `digits` decimals and `unit` after each number. */
export function medianSpread(values: readonly number[], digits = 2, unit = ''): string {
  const f = (v: number) => `${v.toFixed(digits)}${unit}`;
  return `${f(median(values))} (${f(Math.min(...values))}-${f(Math.max(...values))})`;
}
