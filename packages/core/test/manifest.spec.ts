import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DinferErrorCode, isDinferError } from '../src/errors.js';
import { analyzeModel } from '../src/model/analyze.js';
import { fileSystemHandler } from '../src/model/fs-handler.js';
import { loadLayersModel, saveLayersModel } from '../src/model/io.js';
import { initBackend } from '../src/node/backend.js';
import {
  loadPartition,
  type PartitionManifest,
  parsePartitionManifest,
  readPartitionManifest,
  savePartition,
} from '../src/partition/manifest.js';
import { partitionModel } from '../src/partition/partition.js';
import { runPartition } from '../src/partition/run-partition.js';
import { disposeAll, expectClose } from './fixtures/compare.js';
import { fixture, fixtures, sampleInputs } from './fixtures/models.js';

let root: string;

beforeAll(async () => {
  await initBackend();
  root = await mkdtemp(join(tmpdir(), 'dinfer-manifest-'));
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/** The most stages (up to 4) the model allows, from evenly spread valid cuts. */
function manyCuts(model: tf.LayersModel): number[] {
  const valid = analyzeModel(model)
    .cuts.filter((c) => c.valid)
    .map((c) => c.index);
  for (let count = Math.min(3, valid.length); count > 0; count--) {
    const cuts = [
      ...new Set(
        Array.from({ length: count }, (_, j) => valid[Math.floor(((j + 1) * valid.length) / (count + 1))]!),
      ),
    ];
    try {
      partitionModel(model, cuts);
      return cuts;
    } catch {
      // a cut set leaving an InputLayer-only stage: try fewer cuts
    }
  }
  return [valid[0]!];
}

function predictStage(model: tf.LayersModel, inputs: tf.Tensor[]): tf.Tensor[] {
  const out = model.predict(inputs.length === 1 ? inputs[0]! : inputs) as tf.Tensor | tf.Tensor[];
  return Array.isArray(out) ? out : [out];
}

describe('savePartition / loadPartition', () => {
  for (const f of fixtures) {
    it(`${f.name}: every stage round-trips through files and plain tf.loadLayersModel`, async () => {
      const model = f.build();
      const cuts = manyCuts(model);
      const partition = partitionModel(model, cuts);
      const dir = join(root, f.name.replaceAll(' ', '-'));
      const manifest = await savePartition(partition, dir);
      expect(manifest.stages.length).toBe(cuts.length + 1);

      // Each stage, loaded with plain TF.js through the file handler, equals the in-memory stage.
      const inputs = sampleInputs(model, 2, 5);
      const created: tf.Tensor[] = [];
      let current = new Map<string, tf.Tensor>(partition.inputs.map((spec, i) => [spec.name, inputs[i]!]));
      for (const stage of partition.stages) {
        const plain = await tf.loadLayersModel(
          fileSystemHandler(join(dir, manifest.stages[stage.index]!.path)),
        );
        expect(plain.inputs.length).toBe(stage.inputs.length);
        expect(plain.outputs.length).toBe(stage.outputs.length);
        const stageInputs = stage.inputs.map((s) => current.get(s.name)!);
        const expected = predictStage(stage.model, stageInputs);
        const actual = predictStage(plain, stageInputs);
        expectClose(actual, expected, 0);
        tf.dispose(actual);
        const next = new Map<string, tf.Tensor>(current);
        stage.outputs.forEach((s, k) => {
          next.set(s.name, expected[k]!);
        });
        current = next;
        created.push(...expected);
      }
      tf.dispose(created);

      // The loaded partition runs like the model.
      const loaded = await loadPartition(dir);
      expect(loaded.cuts).toEqual(cuts);
      const before = tf.memory().numTensors;
      const result = runPartition(loaded, inputs);
      const reference = model.predict(inputs.length === 1 ? inputs[0]! : inputs) as tf.Tensor | tf.Tensor[];
      expectClose(result, reference);
      disposeAll(result);
      disposeAll(reference);
      expect(tf.memory().numTensors).toBe(before);
    });
  }

  it('the original model still saves and reloads correctly after stages were built from it', async () => {
    const model = fixture('shared layer on two branches').build();
    partitionModel(model, [2, 4]);
    partitionModel(model, [3]);
    const dir = join(root, 'original-after-partition');
    const saved = await saveLayersModel(model, dir);
    const reloaded = await loadLayersModel(saved.modelJsonPath);
    expect(reloaded.layers.map((l) => l.name)).toEqual(model.layers.map((l) => l.name));
    const inputs = sampleInputs(model);
    const expected = model.predict(inputs[0]!) as tf.Tensor;
    const actual = reloaded.predict(inputs[0]!) as tf.Tensor;
    expectClose(actual, expected, 0);
    tf.dispose([...inputs, expected, actual]);
  });

  it('writes the manifest contract exactly', async () => {
    const model = fixture('residual add block').build();
    const names = model.layers.map((l) => l.name);
    const partition = partitionModel(model, [names.indexOf('c2'), names.indexOf('c3')]);
    const dir = join(root, 'contract');
    const manifest = await savePartition(partition, dir);
    const onDisk = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as PartitionManifest;
    expect(onDisk).toEqual(manifest);
    expect(Object.keys(onDisk).sort()).toEqual(['format', 'model', 'stages']);
    expect(onDisk.format).toBe('dinfer-partition/1');
    expect(onDisk.model).toEqual({
      name: 'residual',
      inputs: [{ name: 'image', shape: [null, 8, 8, 4], dtype: 'float32' }],
      outputs: [{ name: 'probs', shape: [null, 3], dtype: 'float32' }],
    });
    expect(onDisk.stages.map((s) => s.layers)).toEqual([
      [0, names.indexOf('c2')],
      [names.indexOf('c2'), names.indexOf('c3')],
      [names.indexOf('c3'), names.length],
    ]);
    for (const stage of onDisk.stages) {
      expect(Object.keys(stage).sort()).toEqual([
        'index',
        'inputs',
        'layers',
        'outputs',
        'path',
        'sha256',
        'weightBytes',
      ]);
      expect(stage.path).toBe(`stage-${stage.index}/model.json`);
      const stageDir = join(dir, `stage-${stage.index}`);
      const shards = (await readdir(stageDir)).filter((f) => f.endsWith('.bin')).sort();
      const bytes = await Promise.all(shards.map((s) => readFile(join(stageDir, s))));
      const hash = createHash('sha256');
      for (const b of bytes) hash.update(b);
      expect(stage.sha256).toBe(hash.digest('hex'));
      expect(stage.weightBytes).toBe(bytes.reduce((s, b) => s + b.byteLength, 0));
      expect(stage.weightBytes).toBe(partition.stages[stage.index]!.weightBytes);
    }
    expect(onDisk.stages[0]!.inputs).toEqual(['image']);
    expect([...onDisk.stages[0]!.outputs].sort()).toEqual(['image', 'relu1/0:0']);
    expect(onDisk.stages[2]!.outputs).toEqual(['probs']);
  });
});

describe('manifest validation', () => {
  let dir: string;
  let good: PartitionManifest;

  beforeAll(async () => {
    const model = fixture('sequential MLP').build();
    dir = join(root, 'validation');
    good = await savePartition(partitionModel(model, [2]), dir);
  });

  /** A writable view of a manifest, for corrupting copies. */
  interface Editable {
    format: string;
    model?: {
      inputs: { name: string; shape: unknown[]; dtype: string }[];
      outputs: { name: string }[];
    };
    stages: {
      index: number;
      layers: number[];
      path: string;
      inputs: string[];
      sha256: string;
      weightBytes: number;
    }[];
  }
  const mutate = (change: (m: Editable) => void): unknown => {
    const copy = JSON.parse(JSON.stringify(good)) as Editable;
    change(copy);
    return copy;
  };

  const cases: [string, (m: Editable) => void, RegExp][] = [
    [
      'a wrong format',
      (m) => {
        m.format = 'dinfer-partition/2';
      },
      /format/,
    ],
    [
      'a missing model',
      (m) => {
        delete m.model;
      },
      /model/,
    ],
    [
      'a bad dtype',
      (m) => {
        m.model!.inputs[0]!.dtype = 'float64';
      },
      /dtype/,
    ],
    [
      'a bad shape',
      (m) => {
        m.model!.inputs[0]!.shape = [null, -1];
      },
      /shape/,
    ],
    [
      'no stages',
      (m) => {
        m.stages = [];
      },
      /stages/,
    ],
    [
      'a wrong stage index',
      (m) => {
        m.stages[1]!.index = 5;
      },
      /index/,
    ],
    [
      'a gap between stages',
      (m) => {
        m.stages[1]!.layers = [3, 4];
      },
      /layers/,
    ],
    [
      'an escaping path',
      (m) => {
        m.stages[0]!.path = '../x/model.json';
      },
      /path/,
    ],
    [
      'an unknown stage input',
      (m) => {
        m.stages[1]!.inputs = ['nowhere/0:0'];
      },
      /nowhere/,
    ],
    [
      'a model output no stage emits',
      (m) => {
        m.model!.outputs[0]!.name = 'ghost';
      },
      /ghost/,
    ],
    [
      'a bad hash',
      (m) => {
        m.stages[0]!.sha256 = 'abc';
      },
      /sha256/,
    ],
    [
      'negative weight bytes',
      (m) => {
        m.stages[0]!.weightBytes = -1;
      },
      /weightBytes/,
    ],
  ];
  for (const [label, change, pattern] of cases) {
    it(`rejects ${label} with MODEL_CORRUPT`, () => {
      let caught: unknown;
      try {
        parsePartitionManifest(mutate(change), '/p/manifest.json');
      } catch (error) {
        caught = error;
      }
      expect(isDinferError(caught, DinferErrorCode.MODEL_CORRUPT)).toBe(true);
      expect((caught as Error).message).toMatch(pattern);
      expect((caught as Error).message).toContain('/p/manifest.json');
    });
  }

  it('accepts the manifest it wrote', async () => {
    expect(parsePartitionManifest(JSON.parse(JSON.stringify(good)), 'x')).toEqual(good);
    expect(await readPartitionManifest(dir)).toEqual(good);
  });

  it('MODEL_NOT_FOUND without a manifest, MODEL_CORRUPT for bad JSON', async () => {
    await expect(loadPartition(join(root, 'no-such-partition'))).rejects.toMatchObject({
      code: DinferErrorCode.MODEL_NOT_FOUND,
    });
    const badDir = join(root, 'bad-manifest');
    await savePartition(partitionModel(fixture('sequential MLP').build(), [1]), badDir);
    await writeFile(join(badDir, 'manifest.json'), '{"format":');
    await expect(loadPartition(badDir)).rejects.toMatchObject({ code: DinferErrorCode.MODEL_CORRUPT });
  });

  it('HASH_MISMATCH when a stage weight file changed after saving', async () => {
    const tampered = join(root, 'tampered');
    await savePartition(partitionModel(fixture('sequential MLP').build(), [2]), tampered);
    const shard = join(tampered, 'stage-1', 'group1-shard1of1.bin');
    const bytes = await readFile(shard);
    bytes[0] = bytes[0]! ^ 0xff;
    await writeFile(shard, bytes);
    await expect(loadPartition(tampered)).rejects.toMatchObject({
      code: DinferErrorCode.HASH_MISMATCH,
      details: expect.objectContaining({ stage: 1 }),
    });
  });
});
