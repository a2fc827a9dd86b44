/**
 * A model prepared for the cluster: partitioned at its cuts, each stage serialised into
 * content-addressed blobs (its model.json and one blob per weight tensor, quantized as the
 * operator asks or as the model's own artifacts were), with what placing a stage requires.
 *
 * @module
 */
import type * as tf from '@tensorflow/tfjs';
import { DinferError, DinferErrorCode } from '../errors.js';
import { analyzeModel } from '../model/analyze.js';
import {
  checkWeightQuantization,
  sourceWeightQuantization,
  type WeightQuantizationByName,
} from '../model/source-quantization.js';
import { stageTotals } from '../model/stage-totals.js';
import type { ModelAnalysis } from '../model/types.js';
import { type Partition, type PartitionStage, partitionModel } from '../partition/partition.js';
import { runStage } from '../partition/run-partition.js';
import { type StageBlobs, stageToBlobs } from '../partition/stage-artifacts.js';
import {
  roundModelWeights,
  WEIGHT_QUANTIZATIONS,
  type WeightQuantization,
  type WeightQuantizationPlan,
} from '../partition/weight-quantization.js';
import { type StageKey, stageKey } from '../protocol/messages.js';
import type { StageRequirement } from '../scheduler.js';
import type { ServedModel } from '../serving/inference-service.js';
import { fromTfTensor, toTfTensor } from '../tensor/tfjs.js';
import type { TensorData } from '../tensor/types.js';

/** Everything needed to deploy one model version. */
export interface DeploymentSpec {
  /** Name clients use to address the model. */
  readonly name: string;
  /** Version label. Default `1`. */
  readonly version?: string | undefined;
  readonly model: tf.LayersModel;
  /** Cut indices (see `partitionModel`); `[]` deploys the whole model as one stage. */
  readonly cuts: readonly number[];
  /** Optional class labels of the first output. */
  readonly labels?: readonly string[] | undefined;
  /** Estimated ms per example for each stage (from the planner); defaults to FLOPs-based. */
  readonly stageMs?: readonly number[] | undefined;
  /**
   * Ship every float32 weight quantized, in TF.js's own format (`float16`: 2 bytes per value,
   * `uint8`: 1 byte, affine per tensor); workers dequantize to float32 as they load. When set
   * it wins over {@link sourceWeightQuantization}. Default: each weight as its source stored it.
   * The model's own weights are rounded in place to the same dequantized values, so the
   * master's degraded-mode run ({@link Deployment.runLocal}) computes what the workers do.
   */
  readonly weightQuantization?: WeightQuantization | undefined;
  /**
   * How the artifacts the model came from stored its weights, by weight name (see
   * `manifestWeightQuantization`): unless {@link weightQuantization} is set, those weights ship
   * in that same form (the same codes, for a model loaded from them) rather than as float32.
   * Default: what core's `loadLayersModel` read for this model (`sourceWeightQuantization`);
   * pass `{}` to ship float32.
   */
  readonly sourceWeightQuantization?: WeightQuantizationByName | undefined;
}

/** One stage of a {@link Deployment}. */
export interface DeploymentStage {
  readonly index: number;
  /** The model's name and version this stage belongs to. */
  readonly model: string;
  readonly version: string;
  readonly key: StageKey;
  readonly partitionStage: PartitionStage;
  /** The stage's blobs: model.json and one blob per weight tensor. */
  readonly blobs: StageBlobs;
  readonly requirement: StageRequirement;
}

/** A model version ready to be placed on workers. */
export interface Deployment {
  readonly name: string;
  readonly version: string;
  readonly served: ServedModel;
  readonly partition: Partition;
  readonly analysis: ModelAnalysis;
  readonly stages: readonly DeploymentStage[];
  /**
   * Runs one stage in this process (degraded mode): inputs and outputs in stage order, with
   * the same (dequantized) weights the workers use.
   */
  runLocal(stage: number, inputs: readonly TensorData[]): Promise<TensorData[]>;
}

const MiB = 1024 * 1024;

/** Partitions and serialises a model version. */
export async function createDeployment(spec: DeploymentSpec): Promise<Deployment> {
  const version = spec.version ?? '1';
  if (spec.weightQuantization !== undefined && !WEIGHT_QUANTIZATIONS.includes(spec.weightQuantization)) {
    throw new DinferError(
      DinferErrorCode.INVALID_ARGUMENT,
      `weightQuantization must be one of ${WEIGHT_QUANTIZATIONS.join(', ')}, got ${JSON.stringify(spec.weightQuantization)}`,
    );
  }
  const source = spec.sourceWeightQuantization ?? sourceWeightQuantization(spec.model);
  checkWeightQuantization(spec.model, source);
  const quantization: WeightQuantizationPlan | undefined =
    spec.weightQuantization ?? (Object.keys(source).length > 0 ? source : undefined);
  // Workers will compute with the dequantized weights: so does the master from now on.
  if (quantization !== undefined) roundModelWeights(spec.model, quantization);
  const analysis = analyzeModel(spec.model);
  const partition = partitionModel(spec.model, spec.cuts);
  const totals = stageTotals(analysis);
  const stages: DeploymentStage[] = [];
  for (const stage of partition.stages) {
    const blobs = await stageToBlobs(stage.model, { quantization });
    const [start, end] = stage.layers;
    const flops = totals.flops(start, end);
    const activationBytes = Math.max(
      ...stage.inputs.map((t) => bytesOf(t.shape)),
      ...stage.outputs.map((t) => bytesOf(t.shape)),
      0,
    );
    stages.push({
      index: stage.index,
      model: spec.name,
      version,
      key: stageKey(spec.name, version, stage.index),
      partitionStage: stage,
      blobs,
      requirement: {
        index: stage.index,
        weightBytes: stage.weightBytes,
        // Weights, the serialised copy while loading, and a few activations of working room.
        memoryBytes: stage.weightBytes * 2 + activationBytes * 8 + 64 * MiB,
        estimatedMs: spec.stageMs?.[stage.index] ?? flops / 1e6,
      },
    });
  }
  const served: ServedModel = {
    name: spec.name,
    version,
    inputs: partition.inputs,
    outputs: partition.outputs,
    labels: spec.labels,
  };
  return {
    name: spec.name,
    version,
    served,
    partition,
    analysis,
    stages,
    async runLocal(index, inputs) {
      const stage = partition.stages[index];
      if (!stage) throw new RangeError(`no stage ${index}`);
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
    },
  };
}

function bytesOf(shape: readonly (number | null)[]): number {
  return shape.reduce<number>((n, d) => n * (d ?? 1), 4);
}
