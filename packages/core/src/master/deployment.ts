/**
 * A model prepared for the cluster: partitioned at its cuts, each stage serialised into
 * content-addressed blobs (its model.json and one blob per weight tensor, quantized as the
 * operator asks or as the model's own artifacts were), with what placing a stage requires.
 *
 * A model comes in one of two forms. In memory (`DeploymentSpec.model`, a `tf.LayersModel`)
 * it is cut by re-applying its layers, and the master can run any stage itself. As artifacts
 * on disk (`DeploymentSpec.artifacts`, a `model.json`) it is never built: it is analysed and
 * cut from its topology, each stage's weights are sliced from the shard files and read as
 * they are shipped, and the master loads a stage itself (degraded mode, the warm-up reference)
 * only where the stage fits its own memory budget. That form serves models larger than the
 * master's memory.
 *
 * Cuts are given (`cuts`) or planned (`plan`): a planned deployment is cut once the workers
 * that will hold it are known, so that its stages fit their memory budgets.
 *
 * @module
 */
import type * as tf from '@tensorflow/tfjs';
import { DinferError, DinferErrorCode } from '../errors.js';
import { analyzeModel } from '../model/analyze.js';
import { type ModelArtifactSource, openModelArtifacts } from '../model/artifact-source.js';
import { analyzeGraph } from '../model/graph-analysis.js';
import {
  checkWeightQuantization,
  sourceWeightQuantization,
  type WeightQuantizationByName,
} from '../model/source-quantization.js';
import { stageTotals } from '../model/stage-totals.js';
import { modelJsonGraph } from '../model/topology-graph.js';
import type { ModelAnalysis, TensorSpec } from '../model/types.js';
import { partitionArtifacts } from '../partition/artifact-partition.js';
import { partitionModel, type StageSignature } from '../partition/partition.js';
import { type StageBlobs, stageToBlobs } from '../partition/stage-artifacts.js';
import {
  roundModelWeights,
  WEIGHT_QUANTIZATIONS,
  type WeightQuantization,
  type WeightQuantizationPlan,
} from '../partition/weight-quantization.js';
import { type PlanOptions, type PlanResult, planCuts } from '../plan/planner.js';
import { stageMemoryModel } from '../plan/stage-memory.js';
import { type StageKey, stageKey } from '../protocol/messages.js';
import type { StageRequirement } from '../scheduler.js';
import type { ServedModel } from '../serving/inference-service.js';
import type { TensorData } from '../tensor/types.js';
import { LocalStages, runStageData } from './local-stages.js';

/** How a deployment without `cuts` is planned (see `planCuts`); the workers' budgets come from the cluster. */
export interface DeploymentPlanOptions extends Omit<PlanOptions, 'stages' | 'workerMemoryBytes'> {
  /** Stages to plan, or `'auto'` to let the planner choose. Default `'auto'`. */
  readonly stages?: number | 'auto' | undefined;
}

/** Everything needed to deploy one model version. */
export interface DeploymentSpec {
  /** Name clients use to address the model. */
  readonly name: string;
  /** Version label. Default `1`. */
  readonly version?: string | undefined;
  /** The model in memory. Give this or {@link DeploymentSpec.artifacts}. */
  readonly model?: tf.LayersModel | undefined;
  /**
   * The model's artifacts: a `model.json` path (or a directory holding one), or an opened
   * source. Served without building the model (see the module documentation). Give this or
   * {@link DeploymentSpec.model}.
   */
  readonly artifacts?: string | ModelArtifactSource | undefined;
  /** Cut indices (see `partitionModel`); `[]` deploys the whole model as one stage. Absent: planned. */
  readonly cuts?: readonly number[] | undefined;
  /** How the cuts are planned when {@link DeploymentSpec.cuts} is absent. Default `{ stages: 'auto' }`. */
  readonly plan?: DeploymentPlanOptions | undefined;
  /** Optional class labels of the first output. */
  readonly labels?: readonly string[] | undefined;
  /** Estimated ms per example for each stage (from the planner); defaults to the plan's or FLOPs-based. */
  readonly stageMs?: readonly number[] | undefined;
  /**
   * Ship every float32 weight quantized, in TF.js's own format (`float16`: 2 bytes per value,
   * `uint8`: 1 byte, affine per tensor); workers dequantize to float32 as they load. When set
   * it wins over {@link sourceWeightQuantization}. Default: each weight as its source stored it.
   * A model in memory has its own weights rounded in place to the same dequantized values, so
   * the master's degraded-mode run ({@link Deployment.runLocal}) computes what the workers do.
   */
  readonly weightQuantization?: WeightQuantization | undefined;
  /**
   * For a model in memory: how the artifacts it came from stored its weights, by weight name
   * (see `manifestWeightQuantization`): unless {@link weightQuantization} is set, those weights
   * ship in that same form (the same codes, for a model loaded from them) rather than as
   * float32. Default: what core's `loadLayersModel` read for this model
   * (`sourceWeightQuantization`); pass `{}` to ship float32. Artifacts always keep their
   * stored forms.
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
  /** The stage's layer range, signature and weight bytes. */
  readonly partitionStage: StageSignature;
  /** The stage's blobs: model.json and one blob per weight tensor. */
  readonly blobs: StageBlobs;
  readonly requirement: StageRequirement;
}

/** The cuts of a deployment and its stages' signatures. */
export interface DeploymentPartition {
  /** The analysis of the whole model. */
  readonly analysis: ModelAnalysis;
  /** The cut indices; empty until planned. */
  readonly cuts: readonly number[];
  /** The stages' signatures; empty until planned. */
  readonly stages: readonly StageSignature[];
  /** The model's inputs. */
  readonly inputs: readonly TensorSpec[];
  /** The model's outputs. */
  readonly outputs: readonly TensorSpec[];
}

/** A model version ready to be placed on workers. */
export interface Deployment {
  readonly name: string;
  readonly version: string;
  readonly served: ServedModel;
  readonly analysis: ModelAnalysis;
  /** True once the stages are cut: at once with `cuts`, else after {@link Deployment.plan}. */
  readonly planned: boolean;
  readonly partition: DeploymentPartition;
  /** The stages; empty until planned. */
  readonly stages: readonly DeploymentStage[];
  /** Stages it has, or the plan asks for before it is planned (1 for `'auto'`). */
  readonly expectedStages: number;
  /**
   * Cuts the stages so that each fits the workers that will hold it (their memory budgets),
   * and prepares their blobs. Resolves at once when already planned; concurrent calls share
   * one planning.
   *
   * @throws DinferError PLAN_INFEASIBLE when the model cannot fit those workers (the message
   *   says how much memory is missing).
   */
  plan(workerMemoryBytes: readonly number[]): Promise<void>;
  /**
   * Runs one stage in this process (degraded mode): inputs and outputs in stage order, with
   * the same (dequantized) weights the workers use.
   *
   * @throws DinferError NO_WORKER for a stage of a model served from artifacts that does not
   *   fit the master's memory budget.
   */
  runLocal(stage: number, inputs: readonly TensorData[]): Promise<TensorData[]>;
  /** Whether {@link Deployment.runLocal} can run stage `index` (always, for a model in memory). */
  runsLocally(index: number): boolean;
  /** Frees what the master loaded to run stages of a model served from artifacts. */
  releaseLocal(): void;
}

/** What a deployment learns from the coordinator. */
export interface DeploymentContext {
  /** The master's memory budget for stages it runs itself (artifact models only). Default: unlimited. */
  readonly localMemoryBytes?: number | undefined;
}

function invalid(message: string): DinferError {
  return new DinferError(DinferErrorCode.INVALID_ARGUMENT, message);
}

interface PreparedStage {
  readonly signature: StageSignature;
  readonly blobs: StageBlobs;
  /** Runs the stage in memory; undefined for a model served from artifacts. */
  readonly run?: ((inputs: readonly TensorData[]) => Promise<TensorData[]>) | undefined;
}

/** What differs between a model in memory and one served from artifacts. */
interface ModelForm {
  readonly analysis: ModelAnalysis;
  readonly inMemory: boolean;
  cut(cuts: readonly number[]): Promise<PreparedStage[]>;
}

function inMemoryForm(spec: DeploymentSpec, model: tf.LayersModel): ModelForm {
  const source = spec.sourceWeightQuantization ?? sourceWeightQuantization(model);
  checkWeightQuantization(model, source);
  const quantization: WeightQuantizationPlan | undefined =
    spec.weightQuantization ?? (Object.keys(source).length > 0 ? source : undefined);
  // Workers will compute with the dequantized weights: so does the master from now on.
  if (quantization !== undefined) roundModelWeights(model, quantization);
  return {
    analysis: analyzeModel(model),
    inMemory: true,
    async cut(cuts) {
      const partition = partitionModel(model, cuts);
      const stages: PreparedStage[] = [];
      for (const stage of partition.stages) {
        stages.push({
          signature: stage,
          blobs: await stageToBlobs(stage.model, { quantization }),
          run: (inputs) => runStageData(stage, inputs),
        });
      }
      return stages;
    },
  };
}

async function artifactForm(
  spec: DeploymentSpec,
  artifacts: string | ModelArtifactSource,
): Promise<ModelForm> {
  const source = typeof artifacts === 'string' ? await openModelArtifacts(artifacts) : artifacts;
  return {
    analysis: analyzeGraph(modelJsonGraph(source.json, source.path)),
    inMemory: false,
    async cut(cuts) {
      const partition = await partitionArtifacts(source, cuts, { quantization: spec.weightQuantization });
      return partition.stages.map((stage) => ({ signature: stage, blobs: stage.blobs }));
    },
  };
}

/**
 * Prepares a model version: analyses it and, when its cuts are given, partitions and
 * serialises it; a version to be planned is cut by {@link Deployment.plan}.
 *
 * @throws DinferError INVALID_ARGUMENT for a spec with neither or both of `model` and
 *   `artifacts`, or an unknown quantization; the model's and artifacts' own errors.
 */
export async function createDeployment(
  spec: DeploymentSpec,
  context: DeploymentContext = {},
): Promise<Deployment> {
  const version = spec.version ?? '1';
  if (spec.weightQuantization !== undefined && !WEIGHT_QUANTIZATIONS.includes(spec.weightQuantization)) {
    throw invalid(
      `weightQuantization must be one of ${WEIGHT_QUANTIZATIONS.join(', ')}, got ${JSON.stringify(spec.weightQuantization)}`,
    );
  }
  if ((spec.model === undefined) === (spec.artifacts === undefined)) {
    throw invalid(
      `deployment "${spec.name}" needs exactly one of model (a tf.LayersModel) and artifacts (a model.json)`,
    );
  }
  const form =
    spec.model !== undefined ? inMemoryForm(spec, spec.model) : await artifactForm(spec, spec.artifacts!);
  const { analysis } = form;
  const memory = stageMemoryModel(analysis, spec.plan?.memory);
  const totals = stageTotals(analysis);
  const served: ServedModel = {
    name: spec.name,
    version,
    inputs: analysis.inputs,
    outputs: analysis.outputs,
    labels: spec.labels,
  };
  const label = `${spec.name}@${version}`;
  const local = new LocalStages(label, context.localMemoryBytes ?? Number.POSITIVE_INFINITY);
  let cuts: readonly number[] = [];
  let prepared: PreparedStage[] = [];
  let stages: DeploymentStage[] = [];
  let planning: Promise<void> | undefined;

  const cutAt = async (chosen: readonly number[], plan: PlanResult | undefined): Promise<void> => {
    const made = await form.cut(chosen);
    stages = made.map(({ signature, blobs }) => {
      const [start, end] = signature.layers;
      return {
        index: signature.index,
        model: spec.name,
        version,
        key: stageKey(spec.name, version, signature.index),
        partitionStage: signature,
        blobs,
        requirement: {
          index: signature.index,
          weightBytes: signature.weightBytes,
          memoryBytes: memory(start, end).totalBytes,
          estimatedMs:
            spec.stageMs?.[signature.index] ??
            plan?.stages[signature.index]?.estimatedMs ??
            totals.flops(start, end) / 1e6,
        },
      };
    });
    prepared = made;
    cuts = [...chosen];
  };
  if (spec.cuts !== undefined) await cutAt(spec.cuts, undefined);

  const expectedStages =
    spec.cuts !== undefined
      ? spec.cuts.length + 1
      : typeof spec.plan?.stages === 'number'
        ? spec.plan.stages
        : 1;
  return {
    name: spec.name,
    version,
    served,
    analysis,
    get planned() {
      return prepared.length > 0;
    },
    get partition(): DeploymentPartition {
      return {
        analysis,
        cuts,
        stages: prepared.map((s) => s.signature),
        inputs: analysis.inputs,
        outputs: analysis.outputs,
      };
    },
    get stages() {
      return stages;
    },
    get expectedStages() {
      return prepared.length > 0 ? prepared.length : expectedStages;
    },
    plan(workerMemoryBytes) {
      if (prepared.length > 0) return Promise.resolve();
      planning ??= (async () => {
        const { stages: wanted, ...options } = spec.plan ?? {};
        const plan = planCuts(analysis, {
          ...options,
          stages: wanted ?? 'auto',
          ...(workerMemoryBytes.length > 0 ? { workerMemoryBytes } : {}),
        });
        await cutAt(plan.cuts, plan);
      })().finally(() => {
        planning = undefined;
      });
      return planning;
    },
    runsLocally(index) {
      const stage = stages[index];
      return stage !== undefined && (form.inMemory || local.fits(localStageOf(stage)));
    },
    async runLocal(index, inputs) {
      const stage = stages[index];
      if (!stage) throw new RangeError(`no stage ${index}`);
      const run = prepared[index]?.run;
      return run !== undefined ? run(inputs) : local.run(localStageOf(stage), inputs);
    },
    releaseLocal() {
      local.release();
    },
  };
}

function localStageOf(stage: DeploymentStage) {
  return { ...stage.partitionStage, blobs: stage.blobs, memoryBytes: stage.requirement.memoryBytes };
}
