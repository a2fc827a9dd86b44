import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadLayersModel, saveLayersModel } from '@dinfer/core';
import { initBackend } from '@dinfer/core/node';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI_MAIN, type CliRun, runBuiltCli } from './e2e-helpers.js';

const cli = CLI_MAIN;

type Result = CliRun;

/** The built CLI from the repository root, on wasm. */
function dinfer(...args: string[]): Promise<Result> {
  return runBuiltCli(args);
}

/** A small residual CNN whose cuts cross one or two tensors. */
function smallModel(): tf.LayersModel {
  const input = tf.input({ shape: [16, 16, 3], name: 'image' });
  const stem = tf.layers
    .conv2d({ filters: 8, kernelSize: 3, padding: 'same', activation: 'relu', name: 'stem' })
    .apply(input) as tf.SymbolicTensor;
  const a = tf.layers
    .conv2d({ filters: 8, kernelSize: 3, padding: 'same', name: 'branch' })
    .apply(stem) as tf.SymbolicTensor;
  const bn = tf.layers.batchNormalization({ name: 'bn' }).apply(a) as tf.SymbolicTensor;
  const added = tf.layers.add({ name: 'add' }).apply([stem, bn]) as tf.SymbolicTensor;
  const relu = tf.layers.activation({ activation: 'relu', name: 'relu' }).apply(added) as tf.SymbolicTensor;
  const pool = tf.layers.globalAveragePooling2d({ name: 'pool' }).apply(relu) as tf.SymbolicTensor;
  const out = tf.layers
    .dense({ units: 5, activation: 'softmax', name: 'head' })
    .apply(pool) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: out, name: 'small' });
}

/** Output of a saved partition, chained stage by stage from its manifest (independent of runPartition). */
async function runSavedStages(dir: string, input: tf.Tensor): Promise<Float32Array> {
  const manifest = JSON.parse(await readFile(path.join(dir, 'manifest.json'), 'utf8')) as {
    model: { inputs: { name: string }[]; outputs: { name: string }[] };
    stages: { path: string; inputs: string[]; outputs: string[] }[];
  };
  const values = new Map<string, tf.Tensor>([[manifest.model.inputs[0]!.name, input]]);
  for (const stage of manifest.stages) {
    const model = await loadLayersModel(path.join(dir, stage.path));
    const args = stage.inputs.map((name) => values.get(name)!);
    const result = model.predict(args.length === 1 ? args[0]! : args);
    const outputs = Array.isArray(result) ? result : [result];
    stage.outputs.forEach((name, i) => {
      values.set(name, outputs[i]!);
    });
  }
  return values.get(manifest.model.outputs[0]!.name)!.dataSync() as Float32Array;
}

function maxRelativeError(actual: Float32Array, expected: Float32Array): number {
  let worst = 0;
  for (let i = 0; i < expected.length; i++) {
    worst = Math.max(worst, Math.abs(actual[i]! - expected[i]!) / Math.max(1e-6, Math.abs(expected[i]!)));
  }
  return worst;
}

describe('dinfer CLI', () => {
  let dir: string;
  let modelJson: string;
  let model: tf.LayersModel;
  let layerNames: string[];

  beforeAll(async () => {
    if (!existsSync(cli)) {
      throw new Error(
        `${cli} is missing: build first (cd packages/server && npx tsc -p tsconfig.build.json)`,
      );
    }
    await initBackend({ backend: 'wasm' });
    dir = await mkdtemp(path.join(tmpdir(), 'dinfer-cli-'));
    model = smallModel();
    layerNames = model.layers.map((l) => l.name);
    modelJson = (await saveLayersModel(model, path.join(dir, 'model'))).modelJsonPath;
  });

  afterAll(async () => {
    model?.dispose();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('inspect lists every layer and every cut, and prints the backend on stderr', async () => {
    const { code, stdout, stderr } = await dinfer('inspect', modelJson);
    expect(code).toBe(0);
    expect(stderr).toMatch(/^backend: wasm/m);
    for (const name of layerNames) expect(stdout).toContain(name);
    expect(stdout).toMatch(/Conv2D\s+\[\?,16,16,8\]\s+224/); // stem: 3*3*3*8 + 8 params
    // Inside the residual block two tensors cross (the shortcut and the branch).
    const cutAfterBranch = stdout.split('\n').find((l) => /^\s*3\s+branch \| bn/.test(l));
    expect(cutAfterBranch).toMatch(/\s2\s+16384\s/);
    expect(stdout).toMatch(/invalid/); // cut 1 leaves only the InputLayer before it
  });

  it('inspect --json prints the analysis as pure JSON', async () => {
    const { code, stdout } = await dinfer('inspect', modelJson, '--json');
    expect(code).toBe(0);
    const analysis = JSON.parse(stdout) as { layers: { name: string }[]; cuts: { index: number }[] };
    expect(analysis.layers.map((l) => l.name)).toEqual(layerNames);
    expect(analysis.cuts).toHaveLength(layerNames.length - 1);
  });

  it('plan --json prints one consistent plan', async () => {
    for (const extra of [[], ['--no-profile']]) {
      const { code, stdout, stderr } = await dinfer('plan', modelJson, '--stages', '3', '--json', ...extra);
      expect(code, stderr).toBe(0);
      const plan = JSON.parse(stdout) as {
        cuts: number[];
        stages: {
          layers: [number, number];
          estimatedMs: number;
          weightBytes: number;
          crossingBytes: number;
        }[];
        bottleneckMs: number;
        costSource: string;
      };
      expect(Object.keys(plan).sort()).toEqual(['bottleneckMs', 'costSource', 'cuts', 'stages']);
      expect(plan.costSource).toBe(extra.length === 0 ? 'profiled' : 'estimated');
      expect(plan.cuts).toHaveLength(2);
      expect(plan.stages).toHaveLength(3);
      const bounds = [0, ...plan.cuts, layerNames.length];
      plan.stages.forEach((stage, i) => {
        expect(stage.layers).toEqual([bounds[i], bounds[i + 1]]);
        expect(stage.estimatedMs).toBeGreaterThan(0);
        expect(plan.bottleneckMs).toBeGreaterThanOrEqual(stage.estimatedMs);
      });
      expect(plan.stages.at(-1)!.crossingBytes).toBe(0);
      const totalWeights = plan.stages.reduce((a, s) => a + s.weightBytes, 0);
      expect(totalWeights).toBe(model.countParams() * 4);
    }
  });

  it('plan prints a table and honours --memory-limit', async () => {
    const { code, stdout } = await dinfer('plan', modelJson, '--stages', '2', '--no-profile');
    expect(code).toBe(0);
    expect(stdout).toMatch(/cuts: \d+/);
    expect(stdout).toMatch(/bottleneck: [\d.]+ ms/);
    const tight = await dinfer('plan', modelJson, '--stages', '2', '--no-profile', '--memory-limit', '100');
    expect(tight.code).toBe(1);
    expect(tight.stderr).toMatch(
      /^error: DINFER_ERR_PLAN_INFEASIBLE: .*smallest limit that fits is \d+ bytes/m,
    );
    expect(tight.stderr).not.toMatch(/\n\s+at /); // no stack without DINFER_DEBUG
  });

  it('split writes stages whose chained outputs reproduce predict', async () => {
    const input = tf.randomUniform([1, 16, 16, 3], -1, 1, 'float32', 7);
    const expected = (model.predict(input) as tf.Tensor).dataSync() as Float32Array;
    for (const how of [
      ['--cuts', '3,5'],
      ['--stages', '2', '--no-profile'],
    ]) {
      const out = path.join(dir, `split-${how[0]!.slice(2)}`);
      const { code, stdout, stderr } = await dinfer('split', modelJson, ...how, '--out', out);
      expect(code, stderr).toBe(0);
      expect(stdout).toContain('manifest.json');
      const manifest = JSON.parse(await readFile(path.join(out, 'manifest.json'), 'utf8')) as {
        stages: { layers: [number, number] }[];
      };
      if (how[0] === '--cuts')
        expect(manifest.stages.map((s) => s.layers)).toEqual([
          [0, 3],
          [3, 5],
          [5, 8],
        ]);
      else expect(manifest.stages).toHaveLength(2);
      const actual = await runSavedStages(out, input);
      expect(maxRelativeError(actual, expected)).toBeLessThan(1e-4);
    }
    input.dispose();
  });

  it('fails with exit 1 and a clear message on invalid cuts, missing files and too many stages', async () => {
    const bad = await dinfer('split', modelJson, '--cuts', '1', '--out', path.join(dir, 'bad'));
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^error: DINFER_ERR_PARTITION_INVALID_CUT: cut 1/m);
    const outOfRange = await dinfer('split', modelJson, '--cuts', '5,99', '--out', path.join(dir, 'bad'));
    expect(outOfRange.code).toBe(1);
    expect(outOfRange.stderr).toMatch(/DINFER_ERR_PARTITION_INVALID_CUT/);
    const missing = await dinfer('inspect', path.join(dir, 'nope', 'model.json'));
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^error: DINFER_ERR_MODEL_NOT_FOUND: .*nope/m);
    const tooMany = await dinfer('plan', modelJson, '--stages', '50', '--no-profile');
    expect(tooMany.code).toBe(1);
    expect(tooMany.stderr).toMatch(/DINFER_ERR_PLAN_INFEASIBLE: .*at most \d+ stage/);
    const debug = await new Promise<Result>((resolve) => {
      execFile(
        process.execPath,
        [cli, 'inspect', path.join(dir, 'nope.json')],
        { env: { ...process.env, DINFER_DEBUG: '1' } },
        (error, stdout, stderr) => resolve({ code: error ? 1 : 0, stdout, stderr }),
      );
    });
    expect(debug.stderr).toMatch(/\n\s+at /);
  });

  it('exits 2 with usage on bad arguments', async () => {
    for (const args of [
      ['plan', modelJson],
      ['plan', modelJson, '--stages', 'two'],
      ['split', modelJson, '--out', path.join(dir, 'x')],
      ['split', modelJson, '--stages', '2', '--cuts', '3', '--out', path.join(dir, 'x')],
      ['inspect', modelJson, '--backend', 'gpu'],
      ['frobnicate'],
    ]) {
      const { code, stderr } = await dinfer(...args);
      expect(code, args.join(' ')).toBe(2);
      expect(stderr).toMatch(/Usage: dinfer/);
    }
  });

  it('uses the backend asked for with --backend', async () => {
    const { code, stderr } = await dinfer('inspect', modelJson, '--backend', 'cpu');
    expect(code).toBe(0);
    expect(stderr).toMatch(/^backend: cpu .*forced/m);
  });
});
