/**
 * A stage model loaded on a worker: built from its cached blobs, warmed up once, and run on
 * plain tensors with no TF.js tensor left behind.
 *
 * @module
 */
import * as tf from '@tensorflow/tfjs';
import { DinferError, DinferErrorCode } from '../errors.js';
import { disposeModel } from '../model/dispose-model.js';
import type { WeightGroupReader } from '../model/model-from-weights.js';
import { modelFromBlobs } from '../partition/stage-artifacts.js';
import type { StageKey } from '../protocol/messages.js';
import { fromTfTensor, toTfTensor } from '../tensor/tfjs.js';
import type { TensorData } from '../tensor/types.js';

/** What identifies a stage and its interface (from a `stage.load` message). */
export interface StageSpec {
  readonly key: StageKey;
  /** SHA-256 of the topology blob. */
  readonly topology: string;
  /** SHA-256 of each weight tensor's blob, in manifest order. */
  readonly weights: readonly string[];
  /** Input tensor names, in the stage model's input order. */
  readonly inputs: readonly string[];
  /** Output tensor names, in the stage model's output order. */
  readonly outputs: readonly string[];
}

/** A ready stage. */
export interface LoadedStage {
  readonly spec: StageSpec;
  readonly model: tf.LayersModel;
  /** Milliseconds of the warm-up run. */
  readonly warmupMs: number;
  /**
   * Runs the stage. Inputs are matched to the stage's inputs by name when every tensor is
   * named with exactly the stage's input names, else by position; outputs come in the stage's
   * output order, named. Throws `DINFER_ERR_TENSOR_INVALID` for inputs that do not fit.
   */
  run(inputs: readonly TensorData[]): Promise<TensorData[]>;
  /** Frees the model's weights. */
  dispose(): void;
}

function invalid(message: string, details: Record<string, unknown> = {}): DinferError {
  return new DinferError(DinferErrorCode.TENSOR_INVALID, message, { details });
}

/** Concrete shape used for the warm-up: batch 1, unknown dimensions 1. */
function warmupShape(shape: readonly (number | null)[]): number[] {
  return shape.map((d) => (d === null || d < 1 ? 1 : d));
}

function orderInputs(spec: StageSpec, inputs: readonly TensorData[]): readonly TensorData[] {
  if (inputs.length !== spec.inputs.length) {
    throw invalid(`stage ${spec.key} takes ${spec.inputs.length} input tensors, got ${inputs.length}`, {
      key: spec.key,
    });
  }
  const names = inputs.map((t) => t.name);
  const byName = new Map(inputs.map((t) => [t.name, t]));
  const named = byName.size === inputs.length && spec.inputs.every((n) => byName.has(n));
  if (!named) return inputs;
  if (names.every((n, i) => n === spec.inputs[i])) return inputs;
  return spec.inputs.map((n) => byName.get(n)!);
}

function checkInput(model: tf.LayersModel, spec: StageSpec, input: TensorData, index: number): void {
  const expected = model.inputs[index]!.shape;
  const ok =
    input.shape.length === expected.length && expected.every((d, i) => d === null || d === input.shape[i]);
  if (!ok) {
    throw invalid(
      `stage ${spec.key} input ${index} (${spec.inputs[index]}) has shape [${input.shape.join(', ')}], expected [${expected.map((d) => d ?? '?').join(', ')}]`,
      { key: spec.key, input: index },
    );
  }
}

class StageInstance implements LoadedStage {
  readonly spec: StageSpec;
  readonly model: tf.LayersModel;
  warmupMs = 0;
  #disposed = false;

  constructor(spec: StageSpec, model: tf.LayersModel) {
    this.spec = spec;
    this.model = model;
  }

  /** Computes the outputs synchronously inside `tf.tidy`; the caller disposes them. */
  #predict(inputs: readonly TensorData[] | undefined): tf.Tensor[] {
    return tf.tidy(() => {
      const xs = this.model.inputs.map((symbolic, i) => {
        const x =
          inputs === undefined
            ? tf.zeros(warmupShape(symbolic.shape), symbolic.dtype)
            : toTfTensor(inputs[i]!);
        return x.dtype === symbolic.dtype ? x : tf.cast(x, symbolic.dtype);
      });
      const batch = xs[0]?.shape[0] ?? 1;
      const y = this.model.predict(xs.length === 1 ? xs[0]! : xs, { batchSize: Math.max(1, batch) });
      return Array.isArray(y) ? y : [y];
    });
  }

  async warmUp(): Promise<void> {
    const start = performance.now();
    let outputs: tf.Tensor[] = [];
    try {
      outputs = this.#predict(undefined);
      await Promise.all(outputs.map((t) => t.data()));
    } catch (error) {
      throw new DinferError(
        DinferErrorCode.MODEL_UNSUPPORTED,
        `stage ${this.spec.key}: warm-up on zeros failed: ${(error as Error).message}`,
        { details: { key: this.spec.key }, cause: error },
      );
    } finally {
      tf.dispose(outputs);
    }
    this.warmupMs = performance.now() - start;
  }

  async run(inputs: readonly TensorData[]): Promise<TensorData[]> {
    if (this.#disposed)
      throw new DinferError(DinferErrorCode.NOT_READY, `stage ${this.spec.key} was unloaded`);
    const ordered = orderInputs(this.spec, inputs);
    for (const [i, input] of ordered.entries()) checkInput(this.model, this.spec, input, i);
    const batch = ordered[0]?.shape[0];
    if (ordered.some((t) => t.shape[0] !== batch)) {
      throw invalid(`stage ${this.spec.key} inputs disagree on the batch size`, { key: this.spec.key });
    }
    let outputs: tf.Tensor[] = [];
    try {
      try {
        outputs = this.#predict(ordered);
      } catch (error) {
        throw new DinferError(
          DinferErrorCode.INTERNAL,
          `stage ${this.spec.key} failed: ${(error as Error).message}`,
          {
            details: { key: this.spec.key },
            cause: error,
          },
        );
      }
      return await Promise.all(outputs.map((t, i) => fromTfTensor(t, this.spec.outputs[i])));
    } finally {
      tf.dispose(outputs);
    }
  }

  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    disposeModel(this.model);
  }
}

/**
 * Builds a stage from its topology and weight bytes (all of them, one blob per group, or a
 * reader of one group's blob at a time), checks that it has as many inputs and
 * outputs as `spec` names, and warms it up once on zeros (batch 1).
 *
 * @throws DinferError MODEL_CORRUPT for bytes that do not make the model or a model that does
 *   not match `spec`; MODEL_UNSUPPORTED when the warm-up fails.
 */
export async function loadStage(
  spec: StageSpec,
  topology: Uint8Array,
  weights: Uint8Array | readonly Uint8Array[] | WeightGroupReader,
): Promise<LoadedStage> {
  const model = await modelFromBlobs(topology, weights, `stage ${spec.key}`);
  const stage = new StageInstance(spec, model);
  try {
    if (model.inputs.length !== spec.inputs.length || model.outputs.length !== spec.outputs.length) {
      throw new DinferError(
        DinferErrorCode.MODEL_CORRUPT,
        `stage ${spec.key}: the model has ${model.inputs.length} inputs and ${model.outputs.length} outputs, the stage names ${spec.inputs.length} and ${spec.outputs.length}`,
        { details: { key: spec.key } },
      );
    }
    await stage.warmUp();
  } catch (error) {
    stage.dispose();
    throw error;
  }
  return stage;
}
