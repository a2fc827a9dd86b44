/**
 * The layer profiler: measures each layer's time on the active TF.js backend by running a
 * LayersModel layer by layer on a random input.
 *
 * @module
 */

import * as tf from '@tensorflow/tfjs';
import { platform } from '#platform';
import { DinferError, DinferErrorCode } from '../errors.js';
import { median, type ProfileOptions, profileSettings, throwIfAborted, timeLayer } from './profile-timing.js';

export { clockReader, type ProfileClock, type ProfileOptions } from './profile-timing.js';

type Layer = tf.layers.Layer;
type LayerNode = Layer['inboundNodes'][number];
type Symbolic = tf.SymbolicTensor;

interface Step {
  /** Position of the layer in `model.layers`, -1 for a layer outside it (a Sequential's input). */
  readonly layerIndex: number;
  readonly node: LayerNode;
}

/**
 * The nodes that compute the model's outputs from its inputs, in an executable order:
 * `model.layers` order (topological), each layer's nodes by index, postponing a node until
 * its inputs exist (shared layers used at several depths).
 */
function executionOrder(model: tf.LayersModel): Step[] {
  const inputIds = new Set(model.inputs.map((t) => t.id));
  const wanted = new Set<LayerNode>();
  const visit = (tensor: Symbolic): void => {
    if (inputIds.has(tensor.id)) return;
    const node = tensor.sourceLayer.inboundNodes[tensor.nodeIndex];
    if (node === undefined) {
      throw new DinferError(
        DinferErrorCode.MODEL_UNSUPPORTED,
        `tensor "${tensor.name}" has no producing node in layer "${tensor.sourceLayer.name}"`,
      );
    }
    if (wanted.has(node)) return;
    wanted.add(node);
    for (const input of node.inputTensors) visit(input);
  };
  for (const output of model.outputs) visit(output);

  const layerIndex = new Map<Layer, number>();
  model.layers.forEach((layer, i) => {
    layerIndex.set(layer, i);
  });
  const pending: Step[] = [];
  const seen = new Set<LayerNode>();
  for (const layer of model.layers) {
    for (const node of layer.inboundNodes) {
      if (wanted.has(node)) {
        pending.push({ layerIndex: layerIndex.get(layer)!, node });
        seen.add(node);
      }
    }
  }
  for (const node of wanted) {
    if (!seen.has(node)) pending.push({ layerIndex: layerIndex.get(node.outboundLayer) ?? -1, node });
  }

  const available = new Set(inputIds);
  const order: Step[] = [];
  let remaining = pending;
  while (remaining.length > 0) {
    const blocked: Step[] = [];
    for (const step of remaining) {
      if (step.node.inputTensors.every((t) => available.has(t.id))) {
        order.push(step);
        for (const out of step.node.outputTensors) available.add(out.id);
      } else {
        blocked.push(step);
      }
    }
    if (blocked.length === remaining.length) {
      throw new DinferError(
        DinferErrorCode.MODEL_UNSUPPORTED,
        `cannot order the layers of model "${model.name}": layer "${blocked[0]!.node.outboundLayer.name}" waits on tensors never produced`,
      );
    }
    remaining = blocked;
  }
  return order;
}

function randomInput(spec: Symbolic, batchSize: number, modelName: string): tf.Tensor {
  const shape = spec.shape.map((d, i) => {
    if (d !== null) return d;
    if (i === 0) return batchSize;
    throw new DinferError(
      DinferErrorCode.MODEL_UNSUPPORTED,
      `cannot profile model "${modelName}": input "${spec.name}" has an unknown dimension ${i} (shape [${spec.shape.join(', ')}])`,
      { details: { input: spec.name, shape: spec.shape } },
    );
  });
  return spec.dtype === 'int32'
    ? tf.randomUniform(shape, 0, 10, 'int32')
    : tf.randomUniform(shape, -1, 1, spec.dtype === 'bool' ? 'bool' : 'float32');
}

/** Runs every step once, returning each `model.layers` entry's time in ms. Disposes everything. */
function runOnce(
  model: tf.LayersModel,
  order: readonly Step[],
  inputs: readonly tf.Tensor[],
  now: () => number,
  synchronous: boolean,
  signal: AbortSignal | undefined,
): number[] {
  const times = new Array<number>(model.layers.length).fill(0);
  const values = new Map<number, tf.Tensor>();
  const uses = new Map<number, number>();
  for (const step of order) {
    for (const t of step.node.inputTensors) uses.set(t.id, (uses.get(t.id) ?? 0) + 1);
  }
  const keep = new Set(model.outputs.map((t) => t.id));
  const inputIds = new Set(model.inputs.map((t) => t.id));
  model.inputs.forEach((spec, i) => {
    values.set(spec.id, inputs[i]!);
  });
  const release = (id: number): void => {
    if (keep.has(id) || inputIds.has(id)) return;
    values.get(id)?.dispose();
    values.delete(id);
  };
  try {
    for (const step of order) {
      throwIfAborted(signal);
      const { node } = step;
      if (node.inputTensors.length === 0) continue; // an InputLayer: its output is a model input
      const args = node.inputTensors.map((t) => values.get(t.id)!);
      const { mask: _mask, ...kwargs } = node.callArgs ?? {};
      const [elapsed, outputs] = timeLayer(
        () => {
          const result = tf.tidy(
            () =>
              node.outboundLayer.apply(args.length === 1 ? args[0]! : args, kwargs) as
                | tf.Tensor
                | tf.Tensor[],
          );
          return Array.isArray(result) ? result : [result];
        },
        now,
        synchronous,
      );
      if (step.layerIndex >= 0) times[step.layerIndex]! += elapsed;
      node.outputTensors.forEach((symbolic, i) => {
        const out = outputs[i];
        if (out === undefined) return;
        values.set(symbolic.id, out);
        if (!uses.has(symbolic.id)) release(symbolic.id);
      });
      for (const t of node.inputTensors) {
        const left = uses.get(t.id)! - 1;
        uses.set(t.id, left);
        if (left === 0) release(t.id);
      }
    }
  } finally {
    for (const [id, tensor] of values) if (!inputIds.has(id)) tensor.dispose();
  }
  return times;
}

/**
 * Measures each layer's time in ms on the active backend: the model runs layer by layer in
 * topological order on a random input and each layer's `apply` is timed until its outputs are
 * computed: on backends that compute on the calling thread (wasm, cpu) until `apply` returns;
 * on the others (tfjs-node, webgl, webgpu) until a `dataSync()` of its outputs returns, minus
 * the time of a second `dataSync()` (the bare copy of the values, which a fused `predict`
 * never makes for intermediate tensors). Each layer's result is the median over `runs`. Returns
 * one entry per `model.layers` entry (0 for input layers; a shared layer sums its calls).
 * Every tensor it creates is disposed.
 *
 * The sum over layers approximates a whole-model `predict`.
 */
export async function profileLayers(model: tf.LayersModel, options: ProfileOptions = {}): Promise<number[]> {
  const { runs, warmup, batchSize, signal, now, synchronous } = profileSettings(options);
  throwIfAborted(signal);
  const order = executionOrder(model);
  const inputs = model.inputs.map((spec) => randomInput(spec, batchSize, model.name));
  const samples: number[][] = model.layers.map(() => []);
  try {
    for (let run = 0; run < warmup + runs; run++) {
      const times = runOnce(model, order, inputs, now, synchronous, signal);
      if (run >= warmup) {
        times.forEach((t, i) => {
          samples[i]!.push(t);
        });
      }
      // Let timers and abort events through between runs.
      await platform.yieldToEventLoop();
    }
  } finally {
    for (const input of inputs) input.dispose();
  }
  return samples.map(median);
}
