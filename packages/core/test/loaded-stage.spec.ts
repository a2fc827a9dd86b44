import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { DinferErrorCode } from '../src/errors.js';
import { initBackend } from '../src/node/backend.js';
import { stageToBlobs } from '../src/partition/stage-artifacts.js';
import { stageKey } from '../src/protocol/messages.js';
import { fromTfTensor } from '../src/tensor/tfjs.js';
import type { TensorData } from '../src/tensor/types.js';
import { type LoadedStage, loadStage } from '../src/worker/loaded-stage.js';
import { randomizeWeights } from './fixtures/models.js';

beforeAll(async () => {
  await initBackend();
});

/** A chain of dense layers long enough that a run takes several compute slices. */
function slowModel(): tf.LayersModel {
  const input = tf.input({ shape: [256], name: 'x' });
  let h: tf.SymbolicTensor = input;
  for (let i = 0; i < 40; i++)
    h = tf.layers.dense({ units: 256, activation: 'tanh' }).apply(h) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: h });
  randomizeWeights(model, 4);
  return model;
}

async function load(model: tf.LayersModel): Promise<LoadedStage> {
  const blobs = await stageToBlobs(model);
  const weights = new Uint8Array(blobs.weightBytes);
  let offset = 0;
  for (const t of blobs.tensors) {
    weights.set(t.bytes, offset);
    offset += t.bytes.byteLength;
  }
  return loadStage(
    {
      key: stageKey('m', '1', 0),
      topology: blobs.topologySha256,
      weights: blobs.tensors.map((t) => t.sha256),
      inputs: model.inputs.map((t) => t.name),
      outputs: model.outputs.map((t) => t.name),
    },
    blobs.topology,
    weights,
  );
}

function batch(rows: number): TensorData {
  return {
    dtype: 'float32',
    shape: [rows, 256],
    data: Float32Array.from({ length: rows * 256 }, (_, i) => Math.sin(i)),
  };
}

describe('loaded stage', () => {
  it('computes what the model predicts while letting the event loop run', async () => {
    const model = slowModel();
    const stage = await load(model);
    const input = batch(256);
    let turns = 0;
    const ticker = setInterval(() => turns++, 0);
    const [out] = await stage.run([input]);
    clearInterval(ticker);
    const x = tf.tensor(input.data, [...input.shape]);
    const want = model.predict(x) as tf.Tensor;
    expect(Array.from(out!.data)).toEqual(Array.from((await fromTfTensor(want)).data));
    // Timers fired during the run (far longer than a compute slice): it did not hold the
    // thread for the whole stage.
    expect(turns).toBeGreaterThan(0);
    tf.dispose([x, want]);
    stage.dispose();
    model.dispose();
  });

  it('keeps its weights until a run in progress is done when unloaded mid-run', async () => {
    const model = slowModel();
    const stage = await load(model);
    const before = tf.memory().numTensors;
    const running = stage.run([batch(64)]);
    stage.dispose();
    const [out] = await running;
    expect(out!.data.length).toBe(64 * 256);
    expect(Array.from(out!.data).every(Number.isFinite)).toBe(true);
    // Now the weights are gone, and new runs are refused.
    expect(tf.memory().numTensors).toBeLessThan(before);
    await expect(stage.run([batch(1)])).rejects.toMatchObject({ code: DinferErrorCode.NOT_READY });
    model.dispose();
  });

  it('stops a run whose request is aborted, leaking no tensor', async () => {
    const model = slowModel();
    const stage = await load(model);
    const before = tf.memory().numTensors;
    const controller = new AbortController();
    const running = stage.run([batch(256)], { signal: controller.signal });
    setImmediate(() => controller.abort());
    await expect(running).rejects.toMatchObject({ code: DinferErrorCode.ABORTED });
    expect(tf.memory().numTensors).toBe(before);
    stage.dispose();
    model.dispose();
  });

  it('never hands back an input buffer as an output (backends that keep input memory)', async () => {
    await tf.setBackend('cpu');
    try {
      const a = tf.input({ shape: [4], name: 'a' });
      const d = tf.layers.dense({ units: 2, name: 'd' }).apply(a) as tf.SymbolicTensor;
      const model = tf.model({ inputs: a, outputs: [a, d] });
      const stage = await load(model);
      const input: TensorData = { dtype: 'float32', shape: [1, 4], data: new Float32Array([1, 2, 3, 4]) };
      const [passed] = await stage.run([input]);
      expect(Array.from(passed!.data)).toEqual([1, 2, 3, 4]);
      expect(passed!.data.buffer).not.toBe(input.data.buffer);
      stage.dispose();
      model.dispose();
    } finally {
      await tf.setBackend('wasm');
    }
  });
});
