/**
 * Ensembles as an {@link InferenceService} decorator: an ensemble is served as one model whose
 * answer combines several member models (each an ordinary model of the inner service, with
 * its own pipeline and versions), run concurrently for every request.
 *
 * @module
 */
import { DinferError, DinferErrorCode, isDinferError } from '../errors.js';
import type { TensorSpec } from '../model/types.js';
import type { TensorData } from '../tensor/types.js';
import { type CombineSpec, checkCombineSpec, combineOutputs } from './ensemble-combine.js';
import type {
  InferenceService,
  InferOptions,
  InferResult,
  MemberResult,
  ServedModel,
  ServiceHealth,
} from './inference-service.js';

/** One member of an ensemble. */
export interface EnsembleMember {
  /** A model the inner service serves. */
  readonly model: string;
  /** Pin a version; default: the member's active version at each request. */
  readonly version?: string | undefined;
}

/** An ensemble: its name, members and how their outputs combine. */
export interface EnsembleDefinition extends CombineSpec {
  /** The name clients use. */
  readonly name: string;
  /** Version label of the definition itself. Default `1`. */
  readonly version?: string | undefined;
  readonly members: readonly EnsembleMember[];
  /**
   * Answer from the members that succeeded when at least this many did (the result names
   * the missing ones). Default: every member must succeed.
   */
  readonly quorum?: number | undefined;
}

/** An {@link InferenceService} that also serves ensembles. */
export interface EnsembleService extends InferenceService {
  /** The ensembles served, by name. */
  ensembles(): readonly EnsembleDefinition[];
}

function invalid(message: string, details: Record<string, unknown> = {}): DinferError {
  return new DinferError(DinferErrorCode.INVALID_ARGUMENT, message, { details });
}

/** Checks an ensemble definition on its own (members are checked against the served models per request). */
function checkDefinition(definition: EnsembleDefinition): void {
  if (typeof definition.name !== 'string' || definition.name.length === 0) {
    throw invalid('an ensemble needs a name');
  }
  checkCombineSpec(definition, definition.members.length);
  const quorum = definition.quorum;
  if (
    quorum !== undefined &&
    (!Number.isInteger(quorum) || quorum < 1 || quorum > definition.members.length)
  ) {
    throw invalid(
      `ensemble "${definition.name}": quorum must be an integer in [1, ${definition.members.length}], got ${quorum}`,
    );
  }
  if (definition.combiner === 'concatenate' && quorum !== undefined && quorum < definition.members.length) {
    throw invalid(
      `ensemble "${definition.name}": a concatenation needs every member, so no quorum below all of them`,
    );
  }
  if (definition.members.some((m) => m.model === definition.name)) {
    throw invalid(`ensemble "${definition.name}" lists itself as a member`);
  }
}

function sameSignature(a: readonly TensorSpec[], b: readonly TensorSpec[]): boolean {
  return (
    a.length === b.length &&
    a.every(
      (spec, i) =>
        spec.dtype === b[i]!.dtype &&
        spec.shape.length === b[i]!.shape.length &&
        spec.shape.every((d, k) => d === null || b[i]!.shape[k] === null || d === b[i]!.shape[k]),
    )
  );
}

/** The outputs an ensemble serves: the members' (concatenated along the axis for `concatenate`). */
function ensembleOutputs(definition: EnsembleDefinition, members: readonly ServedModel[]): TensorSpec[] {
  const first = members[0]!;
  if (definition.combiner !== 'concatenate') return first.outputs.map((spec) => ({ ...spec }));
  return first.outputs.map((spec, k) => {
    const rank = spec.shape.length;
    const axis = definition.axis ?? -1;
    const at = axis < 0 ? rank + axis : axis;
    const shape = [...spec.shape];
    const sizes = members.map((m) => m.outputs[k]?.shape[at]);
    shape[at] = sizes.every((d) => typeof d === 'number')
      ? (sizes as number[]).reduce((a, b) => a + b, 0)
      : null;
    return { ...spec, shape };
  });
}

/**
 * Serves `ensembles` on top of `inner`: `models()` lists them beside the inner models, and
 * `infer(ensemble)` runs every member concurrently through `inner` and combines the answers.
 * Any other model name goes to `inner` unchanged.
 *
 * A member that fails fails the request with its own error code, its message naming the
 * ensemble and the member, unless `quorum` members succeeded: then the answer combines those
 * and {@link InferResult.missing} names the others. {@link InferResult.members} gives each
 * member's model, version and stage trace.
 *
 * @throws DinferError INVALID_ARGUMENT for a definition that can never work (bad combiner,
 *   weights, quorum, duplicate or self-referencing names).
 */
export function ensembleService(
  inner: InferenceService,
  ensembles: readonly EnsembleDefinition[],
): EnsembleService {
  const byName = new Map<string, EnsembleDefinition>();
  for (const definition of ensembles) {
    checkDefinition(definition);
    if (byName.has(definition.name)) throw invalid(`two ensembles are called "${definition.name}"`);
    byName.set(definition.name, definition);
  }

  /** The members as served now; throws when one is missing or their signatures disagree. */
  const servedMembers = (definition: EnsembleDefinition): ServedModel[] => {
    const served = new Map(inner.models().map((m) => [m.name, m]));
    const members = definition.members.map((member) => {
      const model = served.get(member.model);
      if (model === undefined) {
        throw new DinferError(
          DinferErrorCode.UNKNOWN_MODEL,
          `ensemble "${definition.name}": member model "${member.model}" is not served`,
          { details: { ensemble: definition.name, member: member.model } },
        );
      }
      return model;
    });
    for (const model of members.slice(1)) {
      if (!sameSignature(model.inputs, members[0]!.inputs)) {
        throw new DinferError(
          DinferErrorCode.INVALID_ARGUMENT,
          `ensemble "${definition.name}": member "${model.name}" takes other inputs than "${members[0]!.name}"`,
          { details: { ensemble: definition.name } },
        );
      }
    }
    return members;
  };

  const describe = (definition: EnsembleDefinition): ServedModel | undefined => {
    let members: ServedModel[];
    try {
      members = servedMembers(definition);
    } catch {
      return undefined; // not servable until its members are
    }
    const labels = members[0]!.labels;
    const sameLabels =
      definition.combiner !== 'concatenate' &&
      labels !== undefined &&
      members.every((m) => m.labels?.length === labels.length && m.labels.every((l, i) => l === labels[i]));
    return {
      name: definition.name,
      version: definition.version ?? '1',
      inputs: members[0]!.inputs.map((spec) => ({ ...spec })),
      outputs: ensembleOutputs(definition, members),
      ...(sameLabels ? { labels } : {}),
      versions: [definition.version ?? '1'],
    };
  };

  return {
    ensembles: () => [...byName.values()],

    models() {
      const own = inner.models().filter((m) => !byName.has(m.name));
      const described = [...byName.values()].map(describe).filter((m): m is ServedModel => m !== undefined);
      return [...own, ...described];
    },

    health(): ServiceHealth {
      return inner.health();
    },

    async infer(
      model: string,
      inputs: readonly TensorData[],
      options: InferOptions = {},
    ): Promise<InferResult> {
      const definition = byName.get(model);
      if (definition === undefined) return inner.infer(model, inputs, options);
      const version = definition.version ?? '1';
      if (options.version !== undefined && options.version !== version) {
        throw new DinferError(
          DinferErrorCode.UNKNOWN_MODEL,
          `ensemble "${definition.name}" has no version "${options.version}"; available: ${version}`,
          { details: { model, version: options.version } },
        );
      }
      servedMembers(definition);
      const started = performance.now();
      const settled = await Promise.allSettled(
        definition.members.map((member, m) =>
          inner.infer(member.model, inputs, {
            ...options,
            version: member.version,
            requestId: options.requestId === undefined ? undefined : `${options.requestId}/${m}`,
          }),
        ),
      );
      const succeeded: { index: number; result: InferResult }[] = [];
      const failed: { index: number; error: unknown }[] = [];
      settled.forEach((outcome, index) => {
        if (outcome.status === 'fulfilled') succeeded.push({ index, result: outcome.value });
        else failed.push({ index, error: outcome.reason });
      });
      const quorum = definition.quorum ?? definition.members.length;
      if (succeeded.length < quorum) {
        const first = failed[0]!;
        const member = definition.members[first.index]!.model;
        const cause = first.error;
        const text = cause instanceof Error ? cause.message : String(cause);
        throw new DinferError(
          isDinferError(cause) ? cause.code : DinferErrorCode.INTERNAL,
          `ensemble "${definition.name}": member "${member}" failed: ${text}` +
            (quorum < definition.members.length
              ? ` (${succeeded.length} of ${definition.members.length} answered, quorum ${quorum})`
              : ''),
          {
            cause,
            details: {
              ensemble: definition.name,
              failed: failed.map((f) => definition.members[f.index]!.model),
              ...(isDinferError(cause) ? cause.details : {}),
            },
          },
        );
      }
      const weights = definition.weights;
      const outputs = combineOutputs(
        succeeded.map((s) => s.result.outputs),
        {
          ...definition,
          weights: weights === undefined ? undefined : succeeded.map((s) => weights[s.index]!),
        },
      );
      const members: MemberResult[] = succeeded.map(({ result }) => ({
        model: result.model,
        version: result.version,
        nodes: result.nodes,
        degraded: result.degraded,
        ...(result.cached === undefined ? {} : { cached: result.cached }),
      }));
      return {
        model: definition.name,
        version,
        outputs,
        nodes: succeeded.flatMap((s) => s.result.nodes),
        degraded: succeeded.some((s) => s.result.degraded),
        processingTimeMs: performance.now() - started,
        members,
        ...(failed.length > 0 ? { missing: failed.map((f) => definition.members[f.index]!.model) } : {}),
      };
    },
  };
}
