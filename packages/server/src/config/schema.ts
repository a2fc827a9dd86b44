/**
 * The schema of a dinfer config file (YAML or JSON), made from the settings table: one
 * document for the master and the worker processes. Every key is optional (defaults come from
 * the table) and every object is strict, so a typo such as `prot:` is an error rather than
 * silently ignored.
 *
 * ```yaml
 * backend: wasm
 * logLevel: info
 * master:
 *   model: ./models/resnet50/model.json     # or modelRepo: ./models (+ pollRepoSeconds: 30)
 *   stages: 2
 *   http: { host: 0.0.0.0, port: 8080, bodyLimitBytes: 32MiB, requestTimeoutMs: 60000 }
 *   cluster: { port: 7070, transport: tcp, token: s3cret, scheduler: load }
 *   batching: { maxBatchSize: 8, maxBatchDelayMs: 5, maxQueue: 256 }
 *   cache: { enabled: true, maxBytes: 64MB }
 *   preprocess: { scale: 0.00392156862745098, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] }
 * worker:
 *   master: 10.0.0.5:7070
 *   cacheDir: /var/cache/dinfer
 *   memoryBytes: 4GiB
 * ```
 *
 * @module
 */
import { z } from 'zod';
import type { Setting, SettingPath } from './setting.js';
import { SETTINGS } from './settings.js';

type Table = (typeof SETTINGS)[number];

/** `{ a?: { b?: V } }` for the path `['a', 'b']`. */
type Nest<P, V> = P extends readonly [infer H extends string, ...infer R]
  ? { [K in H]?: R extends readonly [] ? V : Nest<R, V> }
  : never;

type UnionToIntersection<U> = (U extends unknown ? (u: U) => void : never) extends (i: infer I) => void
  ? I
  : never;

/** Flattens an intersection of objects, recursively, into one object type. */
type Merge<T> = T extends readonly unknown[] ? T : T extends object ? { [K in keyof T]: Merge<T[K]> } : T;

type DocumentOf<S, Side extends 'input' | 'output'> = S extends {
  readonly config: readonly (infer P)[];
  readonly schema: infer Z extends z.ZodType;
}
  ? Nest<P, Side extends 'input' ? z.input<Z> : z.output<Z>>
  : never;

/** A validated config document (byte counts already converted to numbers). */
export type DinferConfig = Merge<UnionToIntersection<DocumentOf<Table, 'output'>>>;

/** A config document as written (byte counts may still be strings like `"64MB"`). */
export type DinferConfigInput = Merge<UnionToIntersection<DocumentOf<Table, 'input'>>>;

/** A section of the document under construction: its settings' schemas and its subsections. */
interface Section {
  readonly keys: Map<string, z.ZodType | Section>;
}

function build(section: Section, error?: string): z.ZodObject {
  const shape: Record<string, z.ZodType> = {};
  for (const [key, node] of section.keys) {
    shape[key] = (node instanceof z.ZodType ? node : build(node)).optional();
  }
  return error === undefined ? z.strictObject(shape) : z.strictObject(shape, { error });
}

function place(root: Section, path: SettingPath, schema: z.ZodType, where: string): void {
  let section = root;
  path.forEach((key, i) => {
    const existing = section.keys.get(key);
    if (i === path.length - 1) {
      if (existing !== undefined)
        throw new Error(`settings table: ${where}: config path ${path.join('.')} taken twice`);
      section.keys.set(key, schema);
      return;
    }
    if (existing instanceof z.ZodType)
      throw new Error(`settings table: ${where}: ${path.join('.')} under a value`);
    const next: Section = existing ?? { keys: new Map() };
    section.keys.set(key, next);
    section = next;
  });
}

/** Builds the strict document schema of `settings` (former keys accepted beside the current ones). */
export function buildConfigSchema(settings: readonly Setting[]): z.ZodObject {
  // Sections first at the top (master, worker), then the settings shared by every command.
  const root: Section = {
    keys: new Map([
      ['master', { keys: new Map() }],
      ['worker', { keys: new Map() }],
    ]),
  };
  for (const entry of settings) {
    for (const path of entry.config ?? []) {
      place(root, path, entry.schema, entry.key);
      if (entry.formerConfigKey !== undefined) {
        const former = [...path.slice(0, -1), entry.formerConfigKey] as unknown as SettingPath;
        place(root, former, entry.schema.meta({ formerOf: path.at(-1) }), entry.key);
      }
    }
  }
  const top = [...root.keys.keys()];
  return build(root, `expected a mapping with the sections ${top.join(', ')}`);
}

/** The whole config document; see {@link parseConfig} for the checked, normalised result. */
export const configSchema = buildConfigSchema(SETTINGS);

/** The schema of the object at `path` of {@link configSchema} (e.g. `['master', 'preprocess']`). */
export function configSection(path: readonly string[]): z.ZodObject {
  let schema: z.ZodType = configSchema;
  for (const key of path) {
    const shape = (schema as z.ZodObject).shape as Record<string, z.ZodType>;
    const next = shape[key];
    if (next === undefined) throw new Error(`no config section ${path.join('.')}`);
    schema = next instanceof z.ZodOptional ? (next.unwrap() as z.ZodType) : next;
  }
  return schema as z.ZodObject;
}

/** The `master.preprocess` section for image inputs (also a repository version's `preprocess`). */
export const preprocessSectionSchema = configSection(['master', 'preprocess']);

/**
 * Moves the values written under a former key name (e.g. `master.batching.maxDelayMs`) to the
 * current one, in place; returns a problem, located by `locate`, for each key given both ways.
 */
export function adoptFormerKeys(
  document: DinferConfig,
  locate: (path: readonly string[]) => string,
  settings: readonly Setting[] = SETTINGS,
): string[] {
  const problems: string[] = [];
  for (const entry of settings) {
    if (entry.formerConfigKey === undefined) continue;
    for (const path of entry.config ?? []) {
      let parent: unknown = document;
      for (const key of path.slice(0, -1)) parent = (parent as Record<string, unknown> | undefined)?.[key];
      const section = parent as Record<string, unknown> | undefined;
      const current = path.at(-1) as string;
      if (section === undefined || !(entry.formerConfigKey in section)) continue;
      if (section[current] !== undefined) {
        problems.push(
          `${locate(path)}: give ${current} or its former name ${entry.formerConfigKey}, not both`,
        );
        continue;
      }
      section[current] = section[entry.formerConfigKey];
      delete section[entry.formerConfigKey];
    }
  }
  return problems;
}
