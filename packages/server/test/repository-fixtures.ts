/**
 * Models for the repository and hot-swap tests.
 *
 * @module
 */
import * as tf from '@tensorflow/tfjs';

/**
 * Makes the outputs of `model` NaN with finite weights: `hidden` gets a huge bias, and each
 * unit of `head` adds it with +10 and -10 weights, so every logit is +Infinity - Infinity.
 */
export function overflowHead(model: tf.LayersModel, hidden: string, head: string): void {
  const [kernel, bias] = model.getLayer(hidden).getWeights() as [tf.Tensor, tf.Tensor];
  model.getLayer(hidden).setWeights([kernel, tf.fill(bias.shape, 3e38)]);
  const [headKernel, headBias] = model.getLayer(head).getWeights() as [tf.Tensor2D, tf.Tensor];
  const [rows, cols] = headKernel.shape;
  const signs = tf.tensor2d(
    Array.from({ length: rows * cols }, (_, i) => (Math.floor(i / cols) % 2 === 0 ? 10 : -10)),
    [rows, cols],
  );
  model.getLayer(head).setWeights([signs, headBias]);
}
