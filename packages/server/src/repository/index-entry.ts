/**
 * Entries of the repository index (`GET /v2/repository/index`): their states and reasons, and
 * the entry of a version the coordinator holds.
 *
 * @module
 */
import type { VersionStatus } from '@dinfer/core';
import { compareVersions } from './version-order.js';

/** States of the KServe / Triton repository index. */
export type RepositoryModelState = 'READY' | 'UNAVAILABLE' | 'LOADING';

/** One entry of `GET /v2/repository/index`: one model version. */
export interface RepositoryIndexEntry {
  readonly name: string;
  readonly version: string;
  /** `READY`: serving new requests; `LOADING`: being rolled out; `UNAVAILABLE`: see `reason`. */
  readonly state: RepositoryModelState;
  /** Why the version is in its state; empty for `READY`. */
  readonly reason: string;
}

/** Reason given for a version in the repository that the coordinator does not hold. */
export const REASON_NOT_LOADED = 'not loaded';
/** Reason given for a standby version. */
export const REASON_STANDBY = 'standby: a previous version kept for rollback; load it to activate it again';

/** A map key for a model version; `/` can be in neither a model nor a version directory name. */
export const key = (name: string, version: string) => `${name}/${version}`;

/** The model and version of a {@link key}. */
export function splitKey(k: string): [string, string] {
  const at = k.lastIndexOf('/');
  return [k.slice(0, at), k.slice(at + 1)];
}

/** The index entry of a version the coordinator holds. */
export function indexEntryOf(status: VersionStatus): RepositoryIndexEntry {
  const base = { name: status.model, version: status.version };
  switch (status.state) {
    case 'active':
      return { ...base, state: 'READY', reason: '' };
    case 'loading':
      return {
        ...base,
        state: 'LOADING',
        reason: `loading: ${status.stagesLoaded} of ${status.stages} stages on workers`,
      };
    case 'standby':
      return { ...base, state: 'UNAVAILABLE', reason: REASON_STANDBY };
    case 'failed':
      return { ...base, state: 'UNAVAILABLE', reason: `load failed: ${status.error ?? 'unknown error'}` };
  }
}

/** Sorts entries by model name, then version (numeric versions as numbers). */
export function sortEntries(entries: Iterable<RepositoryIndexEntry>): RepositoryIndexEntry[] {
  return [...entries].sort((a, b) =>
    a.name < b.name ? -1 : a.name > b.name ? 1 : compareVersions(a.version, b.version),
  );
}
