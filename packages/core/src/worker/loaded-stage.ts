/**
 * A stage model loaded on a worker: built from its cached blobs, warmed up once, and run on
 * plain tensors with no TF.js tensor left behind.
 *
 * A run computes layer after layer ({@link graphRunner}) and gives the event loop a turn
 * every {@link COMPUTE_SLICE_MS} of computing: while one request computes, the worker keeps
 * receiving and decoding the next ones and keeps sending the last reply, so neither the
 * master nor the next stage waits for this one to finish a whole stage.
 *
 * @module
 */
import * as tf from '@tensorflow/tfjs';
import { platform } from '#platform';
import { DinferError, DinferErrorCode } from '../errors.js';
import { disposeModel } from '../model/dispose-model.js';
import { type GraphRunner, graphRunner } from '../model/graph-runner.js';
import type { WeightGroupReader } from '../model/model-from-weights.js';
import { modelFromBlobs } from '../partition/stage-artifacts.js';
import type { StageKey } from '../protocol/messages.js';
import { fromTfTensor, toTfTensor } from '../tensor/tfjs.js';
import type { TensorData } from '../tensor/types.js';

/**
 * Milliseconds a stage computes before it lets the event loop run once. A turn costs a few
 * microseconds when nothing is due; 5 ms keeps the socket read often enough that a 1.6 MB
 * activation arriving during a 100 ms stage is decoded and waiting when the stage ends.
 */
export const COMPUTE_SLICE_MS = 5;

/** Options of one {@link LoadedStage.run}. */
export interface StageRunOptions {
  /** Aborts the run between two slices: it frees what it computed and rejects with `DINFER_ERR_ABORTED`. */
  readonly signal?: AbortSignal | undefined;
}

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
  run(inputs: readonly TensorData[], options?: StageRunOptions): Promise<TensorData[]>;
  /** Frees the model's weights (once the runs in progress are done). */
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
  readonly #runner: GraphRunner;
  #disposed = false;
  /** Runs in progress: a run pauses between slices, and the weights must outlive it. */
  #running = 0;

  constructor(spec: StageSpec, model: tf.LayersModel) {
    this.spec = spec;
    this.model = model;
    this.#runner = graphRunner(model);
  }

  /** The stage's input tensors, in its input order and dtypes (zeros without `inputs`). */
  #tensors(inputs: readonly TensorData[] | undefined): tf.Tensor[] {
    return this.model.inputs.map((symbolic, i) => {
      const x =
        inputs === undefined ? tf.zeros(warmupShape(symbolic.shape), symbolic.dtype) : toTfTensor(inputs[i]!);
      if (x.dtype === symbolic.dtype) return x;
      const cast = tf.cast(x, symbolic.dtype);
      x.dispose();
      return cast;
    });
  }

  async warmUp(): Promise<void> {
    const start = performance.now();
    let xs: tf.Tensor[] = [];
    let outputs: tf.Tensor[] = [];
    try {
      xs = this.#tensors(undefined);
      outputs = this.#runner.run(xs);
      await Promise.all(outputs.map((t) => t.data()));
    } catch (error) {
      throw new DinferError(
        DinferErrorCode.MODEL_UNSUPPORTED,
        `stage ${this.spec.key}: warm-up on zeros failed: ${(error as Error).message}`,
        { details: { key: this.spec.key }, cause: error },
      );
    } finally {
      tf.dispose(xs);
      tf.dispose(outputs);
    }
    this.warmupMs = performance.now() - start;
  }

  async run(inputs: readonly TensorData[], options: StageRunOptions = {}): Promise<TensorData[]> {
    if (this.#disposed)
      throw new DinferError(DinferErrorCode.NOT_READY, `stage ${this.spec.key} was unloaded`);
    const ordered = orderInputs(this.spec, inputs);
    for (const [i, input] of ordered.entries()) checkInput(this.model, this.spec, input, i);
    const batch = ordered[0]?.shape[0];
    if (ordered.some((t) => t.shape[0] !== batch)) {
      throw invalid(`stage ${this.spec.key} inputs disagree on the batch size`, { key: this.spec.key });
    }
    this.#running++;
    let xs: tf.Tensor[] = [];
    let outputs: tf.Tensor[] = [];
    try {
      try {
        xs = this.#tensors(ordered);
        outputs = await this.#runner.runAsync(xs, {
          pause: platform.yieldToEventLoop,
          sliceMs: COMPUTE_SLICE_MS,
          signal: options.signal,
        });
      } catch (error) {
        if (error instanceof DinferError && error.code === DinferErrorCode.ABORTED) throw error;
        throw new DinferError(
          DinferErrorCode.INTERNAL,
          `stage ${this.spec.key} failed: ${(error as Error).message}`,
          { details: { key: this.spec.key }, cause: error },
        );
      }
      tf.dispose(xs);
      xs = [];
      const results = await Promise.all(outputs.map((t, i) => fromTfTensor(t, this.spec.outputs[i])));
      // A backend that keeps tensor values where they came from (the cpu backend does) can
      // hand an input's memory back as an output: copy it, the inputs' frame will be reused.
      const inputBuffers = new Set(ordered.map((t) => t.data.buffer));
      return results.map((r) =>
        inputBuffers.has(r.data.buffer) ? ({ ...r, data: r.data.slice() } as TensorData) : r,
      );
    } finally {
      tf.dispose(xs);
      tf.dispose(outputs);
      if (--this.#running === 0 && this.#disposed) disposeModel(this.model);
    }
  }

  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    if (this.#running === 0) disposeModel(this.model);
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
