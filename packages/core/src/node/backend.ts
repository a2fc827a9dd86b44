import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { type BackendInfo, type BackendName, parseBackendName } from '../backend-info.js';
import { DinferError, DinferErrorCode } from '../errors.js';

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

let active: Promise<BackendInfo> | undefined;
let activeRequest: BackendName | undefined;

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
