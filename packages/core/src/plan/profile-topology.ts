/**
 * The layer profiler for a model described by its `model.json` alone: each layer is built on
 * its own from its config, with zero weights (no initialiser runs and no weight is read), and
 * each of its calls is timed on random inputs of the call's shapes; then the layer is freed.
 * Memory stays at one layer and its inputs and outputs, so a model of any size is profiled in
 * the memory of its largest layer. Timings do not depend on weight values.
 *
 * @module
 */

import * as tf from '@tensorflow/tfjs';
import { platform } from '#platform';
import { disposeModel } from '../model/dispose-model.js';
import { pythonicToTs, unbuiltLayer } from '../model/keras-layer-shapes.js';
import { isModelClass } from '../model/keras-topology.js';
import { zeroWeightModel } from '../model/model-from-weights.js';
import { modelJsonGraph, type TopologyLayer, type TopologyNode } from '../model/topology-graph.js';
import { median, type ProfileOptions, profileSettings, throwIfAborted, timeLayer } from './profile-timing.js';

function randomInput(shape: readonly (number | null)[], dtype: string, batchSize: number): tf.Tensor {
  const concrete = shape.map((d, i) => (i === 0 ? batchSize : (d ?? 1)));
  return dtype === 'int32'
    ? tf.randomUniform(concrete, 0, 10, 'int32')
    : tf.randomUniform(concrete, -1, 1, dtype === 'bool' ? 'bool' : 'float32');
}

/** Makes `layer` alone with zero weights: a nested model whole, any other layer unbuilt (built on its first call). */
function standalone(layer: TopologyLayer, path: string): tf.layers.Layer {
  const where = `${path} > ${layer.name}`;
  if (isModelClass(layer.className)) {
    return zeroWeightModel({ class_name: layer.className, config: layer.entry.config }, where);
  }
  const object = unbuiltLayer(layer.className, layer.entry.config, where);
  object.setFastWeightInitDuringBuild(true);
  return object;
}

function free(object: tf.layers.Layer): void {
  if (object instanceof tf.LayersModel) disposeModel(object);
  else if (object.built) object.dispose();
}

/**
 * Measures each layer's time in ms on the active backend from a `model.json` (its topology;
 * the weights manifest only names the weights), one layer at a time (see the module
 * documentation). Each call's result is the median over `runs` after `warmup` untimed runs,
 * timed as `profileLayers` times them; a layer's entry sums its calls (0 for InputLayers).
 * Returns one entry per layer of `model.layers`, the order the planner takes.
 *
 * @throws DinferError MODEL_CORRUPT, MODEL_UNSUPPORTED or PARTITION_UNSUPPORTED for a topology
 *   that cannot be read; INVALID_ARGUMENT for bad options; ABORTED.
 */
export async function profileTopology(
  json: Pick<tf.io.ModelJSON, 'modelTopology' | 'weightsManifest'>,
  options: ProfileOptions & { readonly path?: string | undefined } = {},
): Promise<number[]> {
  const { runs, warmup, batchSize, signal, now, synchronous } = profileSettings(options);
  const path = options.path ?? '<model.json>';
  const graph = modelJsonGraph(json, path);
  const times = graph.layers.map(() => 0);
  for (const [index, layer] of graph.layers.entries()) {
    const calls: readonly TopologyNode[] = graph.nodesByLayer[index] ?? [];
    if (calls.length === 0) continue;
    throwIfAborted(signal);
    const object = standalone(layer, path);
    try {
      for (const call of calls) {
        const inputs = call.inputs.map((t) => randomInput(t.shape, t.dtype, batchSize));
        const { mask: _mask, ...kwargs } = (pythonicToTs(call.kwargs) ?? {}) as Record<string, unknown>;
        const samples: number[] = [];
        try {
          for (let run = 0; run < warmup + runs; run++) {
            throwIfAborted(signal);
            const [elapsed, outputs] = timeLayer(
              () => {
                const result = tf.tidy(
                  () =>
                    object.apply(inputs.length === 1 ? inputs[0]! : inputs, kwargs) as
                      | tf.Tensor
                      | tf.Tensor[],
                );
                return Array.isArray(result) ? result : [result];
              },
              now,
              synchronous,
            );
            tf.dispose(outputs);
            if (run >= warmup) samples.push(elapsed);
          }
        } finally {
          tf.dispose(inputs);
        }
        times[index]! += median(samples);
      }
    } finally {
      free(object);
    }
    // Let timers and abort events through between layers.
    await platform.yieldToEventLoop();
  }
  return times;
}
