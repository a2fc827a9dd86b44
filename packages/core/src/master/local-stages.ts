/**
 * The stages a master runs itself (degraded mode, the warm-up reference) for a model it
 * serves from artifacts: each loaded on demand from its blobs, like a worker loads it, and
 * only where it fits the master's memory budget. Loaded stages stay until the budget needs
 * room for another (least recently used first) or they are released.
 *
 * @module
 */
import type * as tf from '@tensorflow/tfjs';
import { DinferError, DinferErrorCode } from '../errors.js';
import { disposeModel } from '../model/dispose-model.js';
import type { StageSignature } from '../partition/partition.js';
import { type RunnableStage, runStage } from '../partition/run-partition.js';
import { modelFromBlobs, type StageBlobs } from '../partition/stage-artifacts.js';
import { readBlob } from '../ship/blob-source.js';
import { fromTfTensor, toTfTensor } from '../tensor/tfjs.js';
import type { TensorData } from '../tensor/types.js';

/**
 * Runs a stage model on plain tensors (in its input order) and returns its outputs, named,
 * in its output order; no TF.js tensor is left behind.
 */
export async function runStageData(
  stage: RunnableStage,
  inputs: readonly TensorData[],
): Promise<TensorData[]> {
  const tensors = inputs.map((t) => toTfTensor(t));
  try {
    const outputs = runStage(stage, tensors);
    try {
      return await Promise.all(outputs.map((t, i) => fromTfTensor(t, stage.outputs[i]?.name)));
    } finally {
      for (const t of outputs) t.dispose();
    }
  } finally {
    for (const t of tensors) t.dispose();
  }
}

/** A stage the master may load: its signature, blobs and memory need. */
export interface LocalStage extends StageSignature {
  readonly blobs: StageBlobs;
  /** What it needs of the master's memory budget. */
  readonly memoryBytes: number;
}

interface Loaded {
  readonly model: Promise<tf.LayersModel>;
  readonly memoryBytes: number;
  used: number;
}

/** Runs stages on the master within a memory budget. */
export class LocalStages {
  readonly #label: string;
  readonly #budget: number;
  readonly #loaded = new Map<number, Loaded>();
  #clock = 0;

  /**
   * @param label Names the model version in messages (`name@version`).
   * @param budgetBytes The master's memory budget for stages it runs itself.
   */
  constructor(label: string, budgetBytes: number) {
    this.#label = label;
    this.#budget = budgetBytes;
  }

  /** Whether `stage` fits the budget at all. */
  fits(stage: LocalStage): boolean {
    return stage.memoryBytes <= this.#budget;
  }

  /**
   * Runs `stage` on `inputs` (in its input order), loading it first when needed.
   *
   * @throws DinferError NO_WORKER when the stage does not fit the master's budget, naming it.
   */
  async run(stage: LocalStage, inputs: readonly TensorData[]): Promise<TensorData[]> {
    const model = await this.#model(stage);
    return runStageData({ ...stage, model }, inputs);
  }

  /** Frees every stage loaded. */
  release(): void {
    for (const index of [...this.#loaded.keys()]) this.#unload(index);
  }

  #model(stage: LocalStage): Promise<tf.LayersModel> {
    const loaded = this.#loaded.get(stage.index);
    if (loaded !== undefined) {
      loaded.used = ++this.#clock;
      return loaded.model;
    }
    if (!this.fits(stage)) {
      throw new DinferError(
        DinferErrorCode.NO_WORKER,
        `no worker serves stage ${stage.index} of ${this.#label}, and the master cannot run it: it needs ${stage.memoryBytes} bytes, over the master's memory budget of ${this.#budget} bytes`,
        { details: { stage: stage.index, requiredBytes: stage.memoryBytes, budgetBytes: this.#budget } },
      );
    }
    const byAge = [...this.#loaded.entries()].sort((a, b) => a[1].used - b[1].used);
    let held = [...this.#loaded.values()].reduce((sum, l) => sum + l.memoryBytes, 0);
    for (const [index, old] of byAge) {
      if (held + stage.memoryBytes <= this.#budget) break;
      held -= old.memoryBytes;
      this.#unload(index);
    }
    const { blobs } = stage;
    const model = modelFromBlobs(
      blobs.topology,
      (group) => readBlob(blobs.tensors[group]!),
      `${this.#label} stage ${stage.index}`,
    );
    const entry: Loaded = { model, memoryBytes: stage.memoryBytes, used: ++this.#clock };
    this.#loaded.set(stage.index, entry);
    model.catch(() => {
      if (this.#loaded.get(stage.index) === entry) this.#loaded.delete(stage.index);
    });
    return model;
  }

  #unload(index: number): void {
    const loaded = this.#loaded.get(index);
    this.#loaded.delete(index);
    loaded?.model.then(disposeModel, () => {});
  }
}
