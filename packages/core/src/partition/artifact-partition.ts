/**
 * Splits a model at given cuts working on its artifacts, never on a TF.js model: the
 * topology graph comes from `model.json` (topology-graph.ts), each stage's `model.json` is
 * written from it (stage-topology.ts), and each stage's weights are the source's weight
 * tensors, sliced out of its shard files by the manifest and read again only when shipped
 * (source-tensor-blob.ts). Memory stays at the `model.json` plus one weight tensor at a time
 * (each is read once, to take its SHA-256), whatever the model's size.
 *
 * The stages are those `partitionModel` makes of the model TF.js builds from the same
 * artifacts: the same cuts are valid, the same tensors cross them under the same names, in
 * the same order, and the stage models compute the same thing. Their blobs are
 * content-addressed exactly like `stageToBlobs`'s (a `model.json` blob, one SHA-256 blob per
 * weight tensor): a weight the source stores in float32 hashes to the same blob either way,
 * so shipping, worker caches, resume and deltas work across both.
 *
 * @module
 */
import type { ModelArtifactSource } from '../model/artifact-source.js';
import { specOf } from '../model/cut-graph.js';
import { analyzeGraph, crossingTensors } from '../model/graph-analysis.js';
import { loadedWeightBytes, modelJsonGraph } from '../model/topology-graph.js';
import type { ModelAnalysis, TensorSpec } from '../model/types.js';
import { validateCuts } from './cut-validation.js';
import type { StageSignature } from './partition.js';
import { sourceTensorBlob } from './source-tensor-blob.js';
import { type StageBlobs, stageBlobsOf, type TensorBlob } from './stage-artifacts.js';
import { stageTopology } from './stage-topology.js';
import type { WeightQuantization } from './weight-quantization.js';

/** One stage of an {@link ArtifactPartition}: its signature and its blobs. */
export interface ArtifactStage extends StageSignature {
  /** Its `model.json` and weight tensors; the tensors are read from the source when shipped. */
  readonly blobs: StageBlobs;
}

/** A model's artifacts split into pipeline stages. */
export interface ArtifactPartition {
  /** The analysis of the whole model. */
  readonly analysis: ModelAnalysis;
  /** The cut indices used, strictly increasing. */
  readonly cuts: readonly number[];
  /** The stages, `cuts.length + 1` of them. */
  readonly stages: readonly ArtifactStage[];
  /** The model's inputs (same as `analysis.inputs`). */
  readonly inputs: readonly TensorSpec[];
  /** The model's outputs (same as `analysis.outputs`). */
  readonly outputs: readonly TensorSpec[];
}

/** Options of {@link partitionArtifacts}. */
export interface PartitionArtifactsOptions {
  /**
   * Store every float32 weight in this form (re-encoding weights stored otherwise). Default:
   * every weight as the source stores it, a quantized manifest entry kept as it is.
   */
  readonly quantization?: WeightQuantization | undefined;
}

/**
 * Splits the model of `source` at `cuts` into `cuts.length + 1` stages (see the module
 * documentation); `[]` gives one stage equivalent to the model.
 *
 * @throws DinferError PARTITION_INVALID_CUT for a bad cut (as `partitionModel`);
 *   MODEL_CORRUPT, MODEL_UNSUPPORTED or PARTITION_UNSUPPORTED for a topology that cannot be
 *   partitioned; the source's read errors.
 */
export async function partitionArtifacts(
  source: ModelArtifactSource,
  cuts: readonly number[],
  options: PartitionArtifactsOptions = {},
): Promise<ArtifactPartition> {
  const graph = modelJsonGraph(source.json, source.path);
  const analysis = analyzeGraph(graph);
  validateCuts(graph, analysis, cuts);
  const bounds = [0, ...cuts, graph.layers.length];
  const blobs = new Map<string, Promise<TensorBlob>>();
  const tensorBlob = (name: string): Promise<TensorBlob> => {
    let blob = blobs.get(name);
    if (blob === undefined) {
      blob = sourceTensorBlob(source.weight(name)!, options.quantization);
      blobs.set(name, blob);
    }
    return blob;
  };
  const stages: ArtifactStage[] = [];
  for (let i = 0; i + 1 < bounds.length; i++) {
    const [start, end] = [bounds[i]!, bounds[i + 1]!];
    const inputs = i === 0 ? graph.inputs : crossingTensors(graph, start);
    const outputs = i + 2 === bounds.length ? graph.outputs : crossingTensors(graph, end);
    const topology = stageTopology(graph, source.json, { index: i, start, end, inputs, outputs });
    const weights = topology.layers.flatMap((layer) => layer.weights);
    const tensors: TensorBlob[] = [];
    for (const weight of weights) tensors.push(await tensorBlob(weight.name));
    stages.push({
      index: i,
      layers: [start, end],
      inputs: inputs.map(specOf),
      outputs: outputs.map(specOf),
      weightBytes: topology.layers.reduce((sum, layer) => sum + layer.weightBytes, 0),
      blobs: stageBlobsOf(
        topology.json,
        tensors,
        weights.reduce((sum, w) => sum + loadedWeightBytes(w), 0),
      ),
    });
  }
  return { analysis, cuts: [...cuts], stages, inputs: analysis.inputs, outputs: analysis.outputs };
}
