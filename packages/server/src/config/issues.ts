/**
 * Turns schema validation issues into messages people can act on: where (the file and the
 * path in the document, the environment variable or the flag), what was expected, and what
 * was given; unknown keys come with the keys allowed there and the closest one.
 *
 * @module
 */
import { z } from 'zod';

/** A path in a config document: `['master', 'http', 'port']`, array indices as numbers. */
export type ConfigPath = readonly (string | number)[];

/** Writes a path the way messages show it: `master.cuts[1]`. */
export function formatConfigPath(path: readonly PropertyKey[]): string {
  let text = '';
  for (const key of path) {
    if (typeof key === 'number') text += `[${key}]`;
    else text += text === '' ? String(key) : `.${String(key)}`;
  }
  return text;
}

/** A short rendering of a given value: `"80a"`, `12`, `a list`, `a mapping`. */
function describeValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object' && value !== null) return 'a mapping';
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
  const json = JSON.stringify(value) ?? String(value);
  return json.length > 60 ? `${json.slice(0, 57)}...` : json;
}

/** Levenshtein distance, for "did you mean" hints. */
function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j]!;
      const cost = a[i - 1]!.toLowerCase() === b[j - 1]!.toLowerCase() ? 0 : 1;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, diagonal + cost);
      diagonal = above;
    }
  }
  return row[b.length]!;
}

/** The keys an object schema allows at `path` of `root`, or `[]` when there is no object there. */
export function allowedKeys(root: z.ZodType, path: readonly PropertyKey[]): string[] {
  return keysAt(root, path)
    .filter(([, former]) => former === undefined)
    .map(([key]) => key);
}

/** Each key of the object schema at `path` of `root`, with the current name when it is a former one. */
function keysAt(root: z.ZodType, path: readonly PropertyKey[]): [string, string | undefined][] {
  let schema: unknown = root;
  const unwrap = () => {
    while (schema instanceof z.ZodOptional || schema instanceof z.ZodDefault) schema = schema.unwrap();
  };
  unwrap();
  for (const key of path) {
    if (!(schema instanceof z.ZodObject) || typeof key !== 'string') return [];
    schema = (schema.shape as Record<string, z.ZodType>)[key];
    unwrap();
  }
  if (!(schema instanceof z.ZodObject)) return [];
  const shape = schema.shape as Record<string, z.ZodType>;
  return Object.keys(shape).map((key) => [key, formerKeyOf(shape[key] as z.ZodType)]);
}

/**
 * The current name of a key whose schema was declared as a former spelling (still accepted,
 * left out of the keys messages suggest).
 */
export function formerKeyOf(schema: z.ZodType): string | undefined {
  const inner = schema instanceof z.ZodOptional ? (schema.unwrap() as z.ZodType) : schema;
  const meta = inner.meta() as { formerOf?: unknown } | undefined;
  return typeof meta?.formerOf === 'string' ? meta.formerOf : undefined;
}

/** The allowed key closest to `key`, when it is close enough to be a typo. */
function closest(key: string, allowed: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const candidate of allowed) {
    const d = distance(key, candidate);
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return bestDistance <= Math.max(2, Math.floor(key.length / 3)) ? best : undefined;
}

/**
 * Describes each issue as `<where>: <what was expected>, got <value>`. `locate` names the
 * place of a path (e.g. `config.yaml: master.http.port` or `DINFER_HTTP_PORT`).
 */
export function describeIssues(
  issues: readonly z.core.$ZodIssue[],
  root: z.ZodType,
  locate: (path: readonly PropertyKey[]) => string,
): string[] {
  const lines: string[] = [];
  for (const issue of issues) {
    if (issue.code === 'unrecognized_keys') {
      const keys = keysAt(root, issue.path);
      const allowed = keys.filter(([, former]) => former === undefined).map(([k]) => k);
      for (const key of issue.keys) {
        // A typo of a former name points at the current one.
        const near = closest(
          key,
          keys.map(([k]) => k),
        );
        const hint = keys.find(([k]) => k === near)?.[1] ?? near;
        lines.push(
          `${locate([...issue.path, key])}: unknown key` +
            (hint === undefined ? '' : ` (did you mean "${hint}"?)`) +
            (allowed.length > 0 ? `; expected one of ${allowed.join(', ')}` : ''),
        );
      }
      continue;
    }
    const expected = issue.message.startsWith('expected')
      ? issue.message
      : issue.code === 'invalid_type'
        ? `expected ${issue.expected === 'object' ? 'a mapping' : issue.expected}`
        : issue.code === 'too_small' && issue.origin === 'array'
          ? `expected at least ${issue.minimum} item(s)`
          : issue.message;
    lines.push(`${locate(issue.path)}: ${expected}, got ${describeValue(issue.input)}`);
  }
  return lines;
}
