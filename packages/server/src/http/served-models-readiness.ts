/**
 * What readiness (`GET /v2/health/ready`) adds to the service's own health: the models that
 * should be served are. Every model the service has served counts, until it is unloaded
 * through the repository API; readiness is false while one of them is not served, or while
 * no model is.
 *
 * @module
 */
import type { InferenceService } from '@dinfer/core';

/** The models a server should serve; see the module documentation. */
export interface ServedModelsWatch {
  /** Why the server is not ready for lack of a model, or `undefined` when every one is served. */
  missing(): string | undefined;
  /** Stops expecting `model` (it was unloaded on purpose). */
  forget(model: string): void;
}

/** Watches the models of `service`, starting with those it serves now. */
export function watchServedModels(service: InferenceService): ServedModelsWatch {
  const wanted = new Set<string>();
  const served = (): string[] => {
    try {
      return service.models().map((m) => m.name);
    } catch {
      return [];
    }
  };
  for (const name of served()) wanted.add(name);
  return {
    missing() {
      const now = served();
      for (const name of now) wanted.add(name);
      if (now.length === 0) return 'no model is served';
      const gone = [...wanted].filter((name) => !now.includes(name));
      return gone.length === 0 ? undefined : `${gone.map((n) => `model "${n}"`).join(', ')} is not served`;
    },
    forget(model) {
      wanted.delete(model);
    },
  };
}
