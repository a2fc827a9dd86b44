/**
 * The models a coordinator serves and the lifecycle state of each of their versions.
 *
 * @module
 */
import { DinferError, DinferErrorCode } from '../errors.js';
import type { ServedModel } from '../serving/inference-service.js';
import type { Deployment } from './deployment.js';

/**
 * Lifecycle of one model version: `loading` (shipping and warming up), `active` (new
 * requests run on it), `standby` (a previous version, kept for rollback; its shards stay in
 * the workers' disk caches), `failed` (its rollout failed; see `error`).
 */
export type VersionState = 'loading' | 'active' | 'standby' | 'failed';

/** One version of a model, as the coordinator tracks it. */
export interface VersionEntry {
  readonly deployment: Deployment;
  state: VersionState;
  error: string | undefined;
  /** Requests running on this version now. */
  inflight: number;
  /** Load failures seen during the current rollout. */
  failures: string[];
}

/** One served model and its versions. */
export interface ModelEntry {
  readonly name: string;
  active: VersionEntry | undefined;
  readonly versions: Map<string, VersionEntry>;
}

/** Every model by name, with lookups that fail with clear `UNKNOWN_MODEL` / `NOT_READY` errors. */
export class ModelRegistry {
  readonly models = new Map<string, ModelEntry>();

  /** The model called `name`. @throws DinferError UNKNOWN_MODEL */
  model(name: string): ModelEntry {
    const model = this.models.get(name);
    if (!model) {
      const known = [...this.models.keys()];
      throw new DinferError(
        DinferErrorCode.UNKNOWN_MODEL,
        `unknown model "${name}"; this server serves ${known.length ? known.map((k) => `"${k}"`).join(', ') : 'no models'}`,
        { details: { model: name, known } },
      );
    }
    return model;
  }

  /** The entry of `name`, created when missing. */
  getOrCreate(name: string): ModelEntry {
    let model = this.models.get(name);
    if (!model) {
      model = { name, active: undefined, versions: new Map() };
      this.models.set(name, model);
    }
    return model;
  }

  /** The version a request runs on: the one asked for, else the active one. */
  entryFor(modelName: string, version: string | undefined): VersionEntry {
    const model = this.model(modelName);
    if (version !== undefined) {
      const entry = model.versions.get(version);
      if (!entry || entry.state === 'failed') {
        const known = [...model.versions.values()]
          .filter((e) => e.state !== 'failed')
          .map((e) => e.deployment.version);
        throw new DinferError(
          DinferErrorCode.UNKNOWN_MODEL,
          `model "${modelName}" has no usable version "${version}"; available: ${known.join(', ') || 'none'}`,
          { details: { model: modelName, version, known } },
        );
      }
      return entry;
    }
    if (!model.active) {
      throw new DinferError(DinferErrorCode.NOT_READY, `model "${modelName}" is still loading`, {
        details: { retryAfterMs: 1000 },
      });
    }
    return model.active;
  }

  /** The active deployment of every model. */
  activeDeployments(): Deployment[] {
    const out: Deployment[] = [];
    for (const model of this.models.values()) if (model.active) out.push(model.active.deployment);
    return out;
  }

  /** Versions that belong on workers: active and loading ones, and previous ones still draining. */
  *placedVersions(): Generator<VersionEntry> {
    for (const model of this.models.values()) {
      for (const entry of model.versions.values()) {
        if (entry.state === 'active' || entry.state === 'loading' || entry.inflight > 0) yield entry;
      }
    }
  }

  /** What each model with an active version serves, with its usable versions. */
  served(): ServedModel[] {
    const out: ServedModel[] = [];
    for (const model of this.models.values()) {
      if (!model.active) continue;
      const versions = [...model.versions.values()]
        .filter((e) => e.state !== 'failed')
        .map((e) => e.deployment.version);
      out.push({ ...model.active.deployment.served, versions });
    }
    return out;
  }
}
