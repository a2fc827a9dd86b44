/**
 * The inputs of `pnpm bench:pipeline`: ResNet50-sized images of seeded noise, the same in every
 * process of the bench.
 *
 * @module
 */
import type { TensorData } from '@dinfer/core';

/** Shape of one request: one 224x224 RGB image. */
export const INPUT_SHAPE: readonly [number, number, number, number] = [1, 224, 224, 3];

/** Seeded uniform [-1, 1) inputs, `count` of them, so requests do not all carry the same bytes. */
export function makeInputs(count: number): TensorData[] {
  const elements = INPUT_SHAPE.reduce((a, b) => a * b, 1);
  let seed = 20240601;
  return Array.from({ length: count }, () => {
    const data = new Float32Array(elements);
    for (let i = 0; i < elements; i++) {
      seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
      data[i] = (seed / 4294967296) * 2 - 1;
    }
    return { dtype: 'float32', shape: [...INPUT_SHAPE], data };
  });
}
