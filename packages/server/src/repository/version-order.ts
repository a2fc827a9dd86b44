/**
 * The order of model versions in a repository. Version directories named by digits only
 * (`1`, `2`, `10`) compare as numbers, the Triton / TF Serving convention; any other name
 * (`canary`, `v2`) compares by code points and counts as older than every numeric version, so
 * a stray directory never becomes the default over numbered releases.
 *
 * @module
 */

const NUMERIC = /^\d+$/;

/** True for a version label made of digits only. */
export function isNumericVersion(version: string): boolean {
  return NUMERIC.test(version);
}

/**
 * Compares two version labels, older first: numeric labels by value (`2` < `10`, leading
 * zeros ignored, ties broken by the text), other labels by code points, and every non-numeric
 * label before every numeric one. A total order, usable with `Array.prototype.sort`.
 */
export function compareVersions(a: string, b: string): number {
  const an = isNumericVersion(a);
  const bn = isNumericVersion(b);
  if (an && bn) {
    const x = BigInt(a);
    const y = BigInt(b);
    if (x !== y) return x < y ? -1 : 1;
  } else if (an !== bn) {
    return an ? 1 : -1;
  }
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The newest of `versions` by {@link compareVersions}, or `undefined` when there is none. */
export function newestVersion(versions: Iterable<string>): string | undefined {
  let newest: string | undefined;
  for (const v of versions) if (newest === undefined || compareVersions(v, newest) > 0) newest = v;
  return newest;
}
