/**
 * Freeing a LayersModel that owns its weights.
 *
 * @module
 */
import type * as tf from '@tensorflow/tfjs';

/**
 * Disposes `model` and every weight it holds. TF.js's own `model.dispose()` counts one
 * reference per call of a layer, so a layer the model calls more than once (a shared layer)
 * keeps its weights after it; this frees them too. Use it for a model that no other model
 * shares layers with, such as one built from loaded artifacts.
 */
export function disposeModel(model: tf.LayersModel): void {
  const variables = model.weights.map((w) => w.read());
  model.dispose();
  for (const variable of variables) if (!variable.isDisposed) variable.dispose();
}
