/**
 * What a TF.js backend selection reports, on any runtime (the Node picker is `initBackend` in
 * `@dinfer/core/node`).
 *
 * @module
 */
import { DinferError, DinferErrorCode } from './errors.js';

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

const backendNames: readonly BackendName[] = ['tensorflow', 'wasm', 'cpu'];

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

/** Describes a backend in one line for logs and CLI output. */
export function describeBackend(info: BackendInfo): string {
  const how = info.forced ? 'forced' : 'auto';
  return `backend: ${info.name} (${info.source}, ${how})`;
}
