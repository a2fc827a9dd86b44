import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { DinferError, DinferErrorCode } from './errors.js';

const requireFromHere = createRequire(import.meta.url);

/**
 * tfjs-node(-gpu) installs without its native binding when its install script cannot
 * download libtensorflow. Importing it then fails only after registering hundreds of kernels
 * (with a warning each), so look for the binding first and skip the import when it is absent.
 */
function nativeBindingProblem(pkg: string): string | undefined {
  let root: string;
  try {
    root = dirname(requireFromHere.resolve(`${pkg}/package.json`));
  } catch {
    return 'not installed';
  }
  const lib = join(root, 'lib');
  const found =
    existsSync(lib) &&
    readdirSync(lib).some(
      (dir) => dir.startsWith('napi-v') && existsSync(join(lib, dir, 'tfjs_binding.node')),
    );
  return found
    ? undefined
    : 'installed without its native binding (its install script did not fetch libtensorflow)';
}

/** The backends dinfer can run on, fastest first. `tensorflow` means tfjs-node(-gpu). */
export type BackendName = 'tensorflow' | 'wasm' | 'cpu';

/** Which backend is active and where it came from. */
export interface BackendInfo {
  /** The TF.js backend name now active (`tf.getBackend()`). */
  readonly name: BackendName;
  /** The package that provided it (e.g. `@tensorflow/tfjs-node-gpu`). */
  readonly source: string;
  /** True when the user forced this backend (option or `DINFER_BACKEND`). */
  readonly forced: boolean;
  /** Why each faster candidate was skipped, in the order tried. */
  readonly skipped: readonly { readonly source: string; readonly reason: string }[];
}

/** Options for {@link initBackend}. */
export interface InitBackendOptions {
  /** Force a backend; defaults to `process.env.DINFER_BACKEND`, else the fastest that loads. */
  backend?: BackendName | undefined;
}

interface Candidate {
  readonly name: BackendName;
  readonly source: string;
  load(): Promise<void>;
}

const candidates: readonly Candidate[] = [
  {
    name: 'tensorflow',
    source: '@tensorflow/tfjs-node-gpu',
    load: async () => {
      const problem = nativeBindingProblem('@tensorflow/tfjs-node-gpu');
      if (problem) throw new Error(problem);
      await import(/* @vite-ignore */ '@tensorflow/tfjs-node-gpu' as string);
    },
  },
  {
    name: 'tensorflow',
    source: '@tensorflow/tfjs-node',
    load: async () => {
      const problem = nativeBindingProblem('@tensorflow/tfjs-node');
      if (problem) throw new Error(problem);
      await import(/* @vite-ignore */ '@tensorflow/tfjs-node' as string);
    },
  },
  {
    name: 'wasm',
    source: '@tensorflow/tfjs-backend-wasm',
    load: async () => {
      await import('@tensorflow/tfjs-backend-wasm');
    },
  },
  { name: 'cpu', source: '@tensorflow/tfjs-backend-cpu', load: async () => {} },
];

const backendNames: readonly BackendName[] = ['tensorflow', 'wasm', 'cpu'];

let active: Promise<BackendInfo> | undefined;
let activeRequest: BackendName | undefined;

/** Parses a backend name (e.g. from `DINFER_BACKEND`), throwing a clear error when unknown. */
export function parseBackendName(value: string): BackendName {
  const lower = value.trim().toLowerCase();
  if ((backendNames as readonly string[]).includes(lower)) return lower as BackendName;
  throw new DinferError(
    DinferErrorCode.INVALID_ARGUMENT,
    `unknown backend "${value}": expected one of ${backendNames.join(', ')}`,
    { details: { backend: value } },
  );
}

function firstLine(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.split('\n')[0]?.trim() ?? text;
}

async function tryCandidate(candidate: Candidate): Promise<string | undefined> {
  try {
    await candidate.load();
    const ok = await tf.setBackend(candidate.name);
    if (!ok) return `tf.setBackend('${candidate.name}') returned false`;
    await tf.ready();
    return undefined;
  } catch (error) {
    return firstLine(error);
  }
}

async function select(forced: BackendName | undefined): Promise<BackendInfo> {
  const skipped: { source: string; reason: string }[] = [];
  const pool = forced ? candidates.filter((c) => c.name === forced) : candidates;
  for (const candidate of pool) {
    const reason = await tryCandidate(candidate);
    if (reason === undefined) {
      return { name: candidate.name, source: candidate.source, forced: forced !== undefined, skipped };
    }
    skipped.push({ source: candidate.source, reason });
  }
  const why = skipped.map((s) => `${s.source}: ${s.reason}`).join('; ');
  throw new DinferError(
    DinferErrorCode.BACKEND_UNAVAILABLE,
    forced
      ? `backend "${forced}" was requested but cannot be loaded (${why})`
      : `no TF.js backend could be loaded (${why})`,
    { details: { backend: forced, skipped } },
  );
}

/**
 * Selects and initialises the TF.js backend once per process: the fastest of
 * tfjs-node-gpu, tfjs-node, wasm and cpu that loads, or the one forced by
 * `options.backend` / `DINFER_BACKEND`. Later calls return the same result; asking for a
 * different backend after one is active switches to it.
 */
export function initBackend(options: InitBackendOptions = {}): Promise<BackendInfo> {
  const env = process.env.DINFER_BACKEND;
  const requested = options.backend ?? (env ? parseBackendName(env) : undefined);
  if (active && requested === activeRequest) return active;
  activeRequest = requested;
  active = select(requested);
  active.catch(() => {
    active = undefined;
    activeRequest = undefined;
  });
  return active;
}

/** Describes a backend in one line for logs and CLI output. */
export function describeBackend(info: BackendInfo): string {
  const how = info.forced ? 'forced' : 'auto';
  return `backend: ${info.name} (${info.source}, ${how})`;
}
