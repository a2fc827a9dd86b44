/**
 * One request the plain way, the baseline of `pnpm bench:pipeline`: tensor in, `predict`, read
 * the output back, free everything.
 *
 * @module
 */
import type { TensorData } from '@dinfer/core';
import * as tf from '@tensorflow/tfjs';

/** Runs `model.predict` on `input` and returns the output's values. */
export async function predictOnce(model: tf.LayersModel, input: TensorData): Promise<Float32Array> {
  const x = tf.tensor(input.data, [...input.shape], 'float32');
  const y = model.predict(x) as tf.Tensor;
  try {
    return (await y.data()) as Float32Array;
  } finally {
    x.dispose();
    y.dispose();
  }
}
