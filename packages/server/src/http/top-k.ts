/**
 * Top-k of a slice of values, for classification answers.
 *
 * @module
 */

/** One ranked class. */
export interface RankedClass {
  readonly index: number;
  /** The class label, when the model has labels for this index. */
  readonly label?: string;
  readonly score: number;
}

/**
 * The `k` largest of `values[offset .. offset + length)`, largest first; ties keep the lower
 * index first and NaN ranks below every number. One pass with a small sorted buffer: O(length * k).
 */
export function topK(
  values: ArrayLike<number>,
  offset: number,
  length: number,
  k: number,
  labels?: readonly string[],
): RankedClass[] {
  const take = Math.max(0, Math.min(k, length));
  const idx: number[] = [];
  const val: number[] = [];
  for (let i = 0; i < length; i++) {
    const raw = values[offset + i]!;
    const v = Number.isNaN(raw) ? Number.NEGATIVE_INFINITY : raw;
    if (idx.length === take && (take === 0 || v <= val[take - 1]!)) continue;
    let at = idx.length < take ? idx.length : take - 1;
    while (at > 0 && val[at - 1]! < v) at--;
    idx.splice(at, 0, i);
    val.splice(at, 0, v);
    if (idx.length > take) {
      idx.pop();
      val.pop();
    }
  }
  return idx.map((index) => {
    const label = labels?.[index];
    const score = values[offset + index]!;
    return label === undefined ? { index, score } : { index, label, score };
  });
}
