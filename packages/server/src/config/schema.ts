/**
 * The schema of a dinfer config file (YAML or JSON): one document for the master and the
 * worker processes. Every key is optional (defaults come from the commands) and every object
 * is strict, so a typo such as `prot:` is an error rather than silently ignored.
 *
 * ```yaml
 * backend: wasm
 * logLevel: info
 * master:
 *   model: ./models/resnet50/model.json     # or modelRepo: ./models (+ pollRepoSeconds: 30)
 *   stages: 2                               # or auto: the planner picks, fitting the workers' memory
 *   http: { host: 0.0.0.0, port: 8080, bodyLimitBytes: 32MiB, requestTimeoutMs: 60000 }
 *   cluster: { port: 7070, transport: tcp, token: s3cret, scheduler: load }
 *   batching: { maxBatchSize: 8, maxDelayMs: 5, maxQueue: 256 }
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
import { SCHEDULER_KINDS } from '../cluster/scheduler-factory.js';
import { TRANSPORT_KINDS } from '../cluster/transport-factory.js';

/** Log levels accepted by `logLevel` (pino's). */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** Backends accepted by `backend`. */
export const CONFIG_BACKENDS = ['tensorflow', 'wasm', 'cpu'] as const;

const BYTE_UNITS: Readonly<Record<string, number>> = {
  '': 1,
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
};

/** Reads `50000000`, `"50MB"` or `"1.5GiB"` as a byte count; `undefined` when it is none. */
export function readByteCount(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isSafeInteger(value) && value > 0 ? value : undefined;
  if (typeof value !== 'string') return undefined;
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(value);
  const unit = BYTE_UNITS[match?.[2]?.toLowerCase() ?? 'x'];
  if (!match || unit === undefined) return undefined;
  const bytes = Math.floor(Number(match[1]) * unit);
  return Number.isSafeInteger(bytes) && bytes > 0 ? bytes : undefined;
}

const int = (min: number, max: number, expected: string) =>
  z.int({ error: expected }).min(min, { error: expected }).max(max, { error: expected });

const port = () => int(0, 65535, 'expected an integer between 0 and 65535');
const positiveInt = () => int(1, Number.MAX_SAFE_INTEGER, 'expected a positive integer');
const text = () => z.string({ error: 'expected a string' }).min(1, { error: 'expected a non-empty string' });
const flag = () => z.boolean({ error: 'expected true or false' });
const oneOf = <const T extends readonly [string, ...string[]]>(values: T) =>
  z.enum(values, { error: `expected one of ${values.join(', ')}` });
const finite = (expected: string) =>
  z.number({ error: expected }).refine(Number.isFinite, { error: expected });

/** A byte count: a positive integer, or a string with a unit (`64MB`, `1.5GiB`); parsed to bytes. */
const bytes = () =>
  z
    .union([z.number(), z.string()], {
      error: 'expected a byte count like 50000000, "50MB" or "1.5GiB"',
    })
    .transform((value, ctx) => {
      const n = readByteCount(value);
      if (n === undefined) {
        ctx.addIssue({
          code: 'custom',
          input: value,
          message: 'expected a byte count like 50000000, "50MB" or "1.5GiB"',
        });
        return z.NEVER;
      }
      return n;
    });

/** One number, or one per channel (`[0.485, 0.456, 0.406]`); read as a list. */
const perChannel = (expected: string) =>
  z
    .union([finite(expected), z.array(finite(expected)).min(1)], {
      error: `${expected} or a list of them, one per channel`,
    })
    .transform((v) => (Array.isArray(v) ? v : [v]));

/** The `master.http` section. */
export const httpSectionSchema = z.strictObject({
  host: text().optional(),
  port: port().optional(),
  bodyLimitBytes: bytes().optional(),
  requestTimeoutMs: positiveInt().optional(),
});

/** The `master.cluster` section. */
export const clusterSectionSchema = z.strictObject({
  host: text().optional(),
  port: port().optional(),
  transport: oneOf(TRANSPORT_KINDS).optional(),
  token: text().optional(),
  scheduler: oneOf(SCHEDULER_KINDS).optional(),
  minWorkers: positiveInt().optional(),
  startDegraded: flag().optional(),
  heartbeatTimeoutMs: positiveInt().optional(),
});

/** The `master.batching` section (dynamic batching). */
export const batchingSectionSchema = z.strictObject({
  maxBatchSize: positiveInt().optional(),
  maxDelayMs: z
    .number({ error: 'expected a number of milliseconds >= 0' })
    .min(0, { error: 'expected a number of milliseconds >= 0' })
    .refine(Number.isFinite, { error: 'expected a number of milliseconds >= 0' })
    .optional(),
  maxQueue: positiveInt().optional(),
});

/** The `master.cache` section (result cache). */
export const cacheSectionSchema = z.strictObject({
  enabled: flag().optional(),
  maxBytes: bytes().optional(),
});

/**
 * The `master.preprocess` section for image inputs: `(pixel * scale - mean[c]) / std[c]`, and how
 * an image is fitted to the input size.
 */
export const preprocessSectionSchema = z.strictObject({
  scale: finite('expected a finite number').optional(),
  mean: perChannel('expected a finite number').optional(),
  std: perChannel('expected a finite non-zero number')
    .refine((v) => v.every((s) => s !== 0), { error: 'expected non-zero values (they divide)' })
    .optional(),
  fit: oneOf(['fill', 'cover', 'contain']).optional(),
});

/** The `master` section: what `dinfer master` (and `dinfer up`) serves and how. */
export const masterSectionSchema = z.strictObject({
  model: text().optional(),
  modelRepo: text().optional(),
  pollRepoSeconds: z
    .number({ error: 'expected a positive number of seconds' })
    .positive({ error: 'expected a positive number of seconds' })
    .refine(Number.isFinite, { error: 'expected a positive number of seconds' })
    .optional(),
  name: text().optional(),
  version: text().optional(),
  labels: text().optional(),
  stages: z
    .union([positiveInt(), z.literal('auto')], { error: 'expected a positive integer or "auto"' })
    .optional(),
  cuts: z
    .array(positiveInt(), { error: 'expected a list of layer indices like [57, 120]' })
    .min(1)
    .optional(),
  profile: flag().optional(),
  /** Memory the master may use to run stages itself. */
  memoryBytes: bytes().optional(),
  http: httpSectionSchema.optional(),
  cluster: clusterSectionSchema.optional(),
  batching: batchingSectionSchema.optional(),
  cache: cacheSectionSchema.optional(),
  preprocess: preprocessSectionSchema.optional(),
});

/** The `worker` section: how `dinfer worker` joins a master. */
export const workerSectionSchema = z.strictObject({
  master: text().optional(),
  transport: oneOf(TRANSPORT_KINDS).optional(),
  token: text().optional(),
  name: text().optional(),
  cacheDir: text().optional(),
  cacheMaxBytes: bytes().optional(),
  memoryBytes: bytes().optional(),
  queueLimit: positiveInt().optional(),
});

/** The whole config document. */
export const configSchema = z.strictObject(
  {
    master: masterSectionSchema.optional(),
    worker: workerSectionSchema.optional(),
    backend: oneOf(CONFIG_BACKENDS).optional(),
    logLevel: oneOf(LOG_LEVELS).optional(),
  },
  { error: 'expected a mapping with the sections master, worker, backend, logLevel' },
);

/** A validated config document (byte counts already converted to numbers). */
export type DinferConfig = z.output<typeof configSchema>;

/** A config document as written (byte counts may still be strings like `"64MB"`). */
export type DinferConfigInput = z.input<typeof configSchema>;
