/**
 * Runs a partition in process, stage after stage, passing tensors by name. This is the
 * reference the distributed runtime must agree with.
 *
 * @module
 */
import * as tf from '@tensorflow/tfjs';
import { DinferError, DinferErrorCode } from '../errors.js';
import { graphRunner } from '../model/graph-runner.js';
import type { TensorSpec } from '../model/types.js';

/** The part of a stage that running it needs. */
export interface RunnableStage {
  readonly index: number;
  readonly model: tf.LayersModel;
  readonly inputs: readonly TensorSpec[];
  readonly outputs: readonly TensorSpec[];
}

/** What {@link runPartition} needs: a `Partition` or a loaded partition both fit. */
export interface RunnablePartition {
  /** The whole model's inputs, in model order. */
  readonly inputs: readonly TensorSpec[];
  /** The whole model's outputs, in model order. */
  readonly outputs: readonly TensorSpec[];
  readonly stages: readonly RunnableStage[];
}

/** Inputs of a model: one tensor, tensors in model input order, or tensors by input name. */
export type ModelInputs = tf.Tensor | readonly tf.Tensor[] | Readonly<Record<string, tf.Tensor>>;

function invalid(message: string, details: Record<string, unknown>): DinferError {
  return new DinferError(DinferErrorCode.INVALID_ARGUMENT, message, { details });
}

/** Maps the caller's inputs to model input names, checking count, names and dtypes. */
function bindInputs(specs: readonly TensorSpec[], inputs: ModelInputs): Map<string, tf.Tensor> {
  const names = specs.map((s) => s.name);
  const bound = new Map<string, tf.Tensor>();
  if (inputs instanceof tf.Tensor) {
    if (specs.length !== 1) {
      throw invalid(`the model takes ${specs.length} inputs (${names.join(', ')}); got one tensor`, {
        expected: names,
      });
    }
    bound.set(names[0]!, inputs);
  } else if (Array.isArray(inputs)) {
    const list = inputs as readonly tf.Tensor[];
    if (list.length !== specs.length) {
      throw invalid(`the model takes ${specs.length} inputs (${names.join(', ')}); got ${list.length}`, {
        expected: names,
      });
    }
    list.forEach((t, i) => {
      bound.set(names[i]!, t);
    });
  } else {
    const record = inputs as Readonly<Record<string, tf.Tensor>>;
    const extra = Object.keys(record).filter((k) => !names.includes(k));
    const missing = names.filter((k) => !(k in record));
    if (extra.length > 0 || missing.length > 0) {
      throw invalid(
        `input names do not match the model: expected ${names.join(', ')}` +
          (missing.length ? `; missing ${missing.join(', ')}` : '') +
          (extra.length ? `; unknown ${extra.join(', ')}` : ''),
        { expected: names, missing, extra },
      );
    }
    for (const name of names) bound.set(name, record[name]!);
  }
  specs.forEach((spec) => {
    const tensor = bound.get(spec.name)!;
    if (!(tensor instanceof tf.Tensor) || tensor.isDisposed) {
      throw invalid(`input "${spec.name}" is not a live tf.Tensor`, { input: spec.name });
    }
    if (tensor.dtype !== spec.dtype) {
      throw invalid(`input "${spec.name}" has dtype ${tensor.dtype}, expected ${spec.dtype}`, {
        input: spec.name,
        dtype: tensor.dtype,
        expected: spec.dtype,
      });
    }
    if (tensor.rank !== spec.shape.length) {
      throw invalid(`input "${spec.name}" has rank ${tensor.rank}, expected ${spec.shape.length}`, {
        input: spec.name,
        shape: tensor.shape,
        expected: spec.shape,
      });
    }
  });
  return bound;
}

/**
 * Runs one stage on tensors given in the stage's input order; returns new tensors in its
 * output order. The caller owns (and disposes) both. An output that is a passthrough of an
 * input is returned as a new tensor, never as the input object itself.
 */
export function runStage(stage: RunnableStage, inputs: readonly tf.Tensor[]): tf.Tensor[] {
  if (inputs.length !== stage.inputs.length) {
    throw invalid(`stage ${stage.index} takes ${stage.inputs.length} inputs; got ${inputs.length}`, {
      stage: stage.index,
      expected: stage.inputs.map((s) => s.name),
    });
  }
  return graphRunner(stage.model).run(inputs);
}

/**
 * Runs every stage in order, feeding each with the named tensors it needs (model inputs and
 * earlier stages' outputs), disposing each intermediate as soon as no later stage needs it.
 * Returns one tensor when the model has one output, else tensors in model output order; the
 * caller owns them. The caller's inputs are never disposed.
 *
 * @throws DinferError INVALID_ARGUMENT when inputs do not match the model's inputs.
 * @throws DinferError INTERNAL when a stage needs a tensor no earlier stage produced.
 */
export function runPartition(partition: RunnablePartition, inputs: ModelInputs): tf.Tensor | tf.Tensor[] {
  const available = bindInputs(partition.inputs, inputs);
  const callerOwned = new Set<tf.Tensor>(available.values());
  const lastUse = new Map<string, number>();
  partition.stages.forEach((stage, i) => {
    for (const spec of stage.inputs) lastUse.set(spec.name, i);
  });
  const finalNames = new Set(partition.outputs.map((o) => o.name));
  const release = (name: string) => {
    const tensor = available.get(name);
    available.delete(name);
    if (tensor && !callerOwned.has(tensor)) tensor.dispose();
  };
  try {
    partition.stages.forEach((stage, i) => {
      const stageInputs = stage.inputs.map((spec) => {
        const tensor = available.get(spec.name);
        if (!tensor) {
          throw new DinferError(
            DinferErrorCode.INTERNAL,
            `stage ${stage.index} needs "${spec.name}", which no earlier stage produced`,
            {
              details: { stage: stage.index, tensor: spec.name },
            },
          );
        }
        return tensor;
      });
      const outputs = runStage(stage, stageInputs);
      stage.outputs.forEach((spec, k) => {
        const previous = available.get(spec.name);
        if (previous) release(spec.name);
        available.set(spec.name, outputs[k]!);
      });
      for (const name of [...available.keys()]) {
        if (!finalNames.has(name) && (lastUse.get(name) ?? -1) <= i) release(name);
      }
    });
    const results = partition.outputs.map((spec) => {
      const tensor = available.get(spec.name);
      if (!tensor) {
        throw new DinferError(DinferErrorCode.INTERNAL, `no stage produced the model output "${spec.name}"`, {
          details: { tensor: spec.name },
        });
      }
      available.delete(spec.name);
      return callerOwned.has(tensor) ? tensor.clone() : tensor;
    });
    return results.length === 1 ? results[0]! : results;
  } finally {
    for (const name of [...available.keys()]) release(name);
  }
}
