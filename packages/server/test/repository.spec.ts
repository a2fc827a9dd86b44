import { mkdir, mkdtemp, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  createDeployment,
  DinferErrorCode,
  decodeStored,
  isDinferError,
  readBlob,
  saveLayersModel,
} from '@dinfer/core';
import { initBackend } from '@dinfer/core/node';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CliIo } from '../src/cli/common.js';
import { runCli } from '../src/cli/program.js';
import { startMaster } from '../src/cluster/master.js';
import { loadRepositoryVersion } from '../src/repository/load-version.js';
import { scanRepository } from '../src/repository/scan.js';
import { mergeVersionConfig, parseVersionConfig } from '../src/repository/version-config.js';
import { compareVersions, newestVersion } from '../src/repository/version-order.js';

let root: string;

/** A three-layer dense model with seeded weights. */
function tinyModel(seed: number): tf.LayersModel {
  const input = tf.input({ shape: [4], name: 'x' });
  const h1 = tf.layers.dense({ units: 6, activation: 'relu', name: 'h1' }).apply(input) as tf.SymbolicTensor;
  const h2 = tf.layers.dense({ units: 5, activation: 'relu', name: 'h2' }).apply(h1) as tf.SymbolicTensor;
  const out = tf.layers
    .dense({ units: 3, activation: 'softmax', name: 'out' })
    .apply(h2) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: out, name: 'tiny' });
  let state = seed;
  const next = () => {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    return state / 2 ** 31 - 0.5;
  };
  model.setWeights(model.getWeights().map((w) => tf.tensor(Array.from({ length: w.size }, next), w.shape)));
  return model;
}

async function saveVersion(dir: string, seed = 1): Promise<void> {
  const model = tinyModel(seed);
  await saveLayersModel(model, dir);
  model.dispose();
}

async function expectDinferError(promise: Promise<unknown>, code: string, pattern: RegExp): Promise<void> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isDinferError(error), String(error)).toBe(true);
  expect((error as { code: string }).code).toBe(code);
  expect((error as Error).message).toMatch(pattern);
}

beforeAll(async () => {
  await initBackend();
  root = await mkdtemp(path.join(tmpdir(), 'dinfer-repo-'));
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('version order', () => {
  it('sorts numeric versions by value, others by text and before every numeric one', () => {
    const sorted = ['10', '2', 'v2', '1', 'canary', '01', 'v10'].sort(compareVersions);
    expect(sorted).toEqual(['canary', 'v10', 'v2', '01', '1', '2', '10']);
    expect(newestVersion(['3', '20', '100', 'latest'])).toBe('100');
    expect(newestVersion(['beta', 'alpha'])).toBe('beta');
    expect(newestVersion([])).toBeUndefined();
    // Beyond the safe integers, still by value.
    expect(compareVersions('90071992547409930', '90071992547409929')).toBe(1);
  });
});

describe('version config', () => {
  it('accepts every documented key and reads mean/std as lists', () => {
    const config = parseVersionConfig(
      {
        stages: 3,
        cuts: [2, 5],
        preprocess: { scale: 0.5, mean: 0.1, std: [1, 2, 3] },
        weightQuantization: 'uint8',
      },
      'config.json',
    );
    expect(config).toEqual({
      stages: 3,
      cuts: [2, 5],
      preprocess: { scale: 0.5, mean: [0.1], std: [1, 2, 3] },
      weightQuantization: 'uint8',
    });
  });

  it('names each problem by its key', () => {
    const attempt = (doc: unknown) => {
      try {
        parseVersionConfig(doc, 'm/1/config.json');
        return '';
      } catch (error) {
        expect(isDinferError(error, DinferErrorCode.CONFIG_INVALID)).toBe(true);
        return (error as Error).message;
      }
    };
    expect(attempt({ cuts: [5, 2] })).toMatch(/m\/1\/config.json: cuts.*strictly increasing/);
    expect(attempt({ stages: 0 })).toMatch(/stages: expected a positive integer/);
    expect(attempt({ weightQuantization: 'int4' })).toMatch(
      /weightQuantization: expected one of float16, uint8/,
    );
    expect(attempt({ stage: 2 })).toMatch(/stage: unknown key.*stages/);
    expect(attempt([1])).toMatch(/m\/1\/config.json/);
  });

  it('lets a version override the model directory, its cuts replacing the stage count and back', () => {
    expect(mergeVersionConfig({ stages: 2, weightQuantization: 'float16' }, { cuts: [3] })).toEqual({
      stages: 2,
      cuts: [3],
      weightQuantization: 'float16',
    });
    expect(mergeVersionConfig({ cuts: [3] }, { stages: 4 })).toEqual({ stages: 4 });
    expect(mergeVersionConfig(undefined, undefined)).toEqual({});
  });
});

describe('scanRepository', () => {
  it('rejects a missing repository and a file', async () => {
    await expectDinferError(
      scanRepository(path.join(root, 'nope')),
      DinferErrorCode.MODEL_NOT_FOUND,
      /not found/,
    );
    const file = path.join(root, 'file.txt');
    await writeFile(file, 'x');
    await expectDinferError(scanRepository(file), DinferErrorCode.INVALID_ARGUMENT, /not a directory/);
  });

  it('lists models and versions in order, marks broken versions unavailable with the reason', async () => {
    const repo = path.join(root, 'layout');
    for (const v of ['1', '2', '10']) await saveVersion(path.join(repo, 'alpha', v), Number(v));
    await mkdir(path.join(repo, 'alpha', '11')); // no model.json
    await saveVersion(path.join(repo, 'alpha', '12'));
    await truncate(path.join(repo, 'alpha', '12', 'group1-shard1of1.bin'), 10); // cut short
    await saveVersion(path.join(repo, 'alpha', '.13')); // hidden: still being written
    await saveVersion(path.join(repo, 'beta', '1'));
    await writeFile(path.join(repo, 'beta', '1', 'config.json'), JSON.stringify({ stage: 2 }));
    await mkdir(path.join(repo, 'empty'));
    await writeFile(path.join(repo, 'README.md'), '# models');

    const scan = await scanRepository(repo);
    expect(scan.dir).toBe(path.resolve(repo));
    expect(scan.models.map((m) => m.name)).toEqual(['alpha', 'beta', 'empty']);
    const [alpha, beta, empty] = scan.models;
    expect(alpha!.versions.map((v) => v.version)).toEqual(['1', '2', '10', '11', '12']);
    expect(alpha!.versions.map((v) => v.available)).toEqual([true, true, true, false, false]);
    expect(alpha!.latest).toBe('10');
    expect(alpha!.versions[3]!.reason).toMatch(/no model\.json/);
    expect(alpha!.versions[4]!.reason).toMatch(/holds 10 bytes but its 6 weights need \d+/);
    expect(alpha!.versions[0]!.modelJson).toBe(path.join(path.resolve(repo), 'alpha', '1', 'model.json'));
    expect(beta!.latest).toBeUndefined();
    expect(beta!.versions[0]!.reason).toMatch(/stage: unknown key/);
    expect(empty!.versions).toEqual([]);
    expect(scan.warnings.join('\n')).toMatch(/"alpha" version "11" is unavailable/);
    expect(scan.warnings.join('\n')).toMatch(/"empty" has no version directories/);
    expect(scan.warnings.join('\n')).toMatch(/skipped README.md/);
  });

  it('merges the model directory config and labels with the version ones', async () => {
    const repo = path.join(root, 'config');
    await saveVersion(path.join(repo, 'm', '1'));
    await saveVersion(path.join(repo, 'm', '2'));
    await writeFile(
      path.join(repo, 'm', 'config.json'),
      JSON.stringify({ stages: 3, weightQuantization: 'float16' }),
    );
    await writeFile(path.join(repo, 'm', 'labels.txt'), 'a\nb\nc\n');
    await writeFile(path.join(repo, 'm', '2', 'config.json'), JSON.stringify({ cuts: [2] }));
    await writeFile(path.join(repo, 'm', '2', 'labels.json'), JSON.stringify(['x', 'y', 'z']));
    const [m] = (await scanRepository(repo)).models;
    const [v1, v2] = m!.versions;
    expect(v1!.config).toEqual({ stages: 3, weightQuantization: 'float16' });
    expect(v1!.labelsFile).toBe(path.join(path.resolve(repo), 'm', 'labels.txt'));
    expect(v2!.config).toEqual({ stages: 3, cuts: [2], weightQuantization: 'float16' });
    expect(v2!.labelsFile).toBe(path.join(path.resolve(repo), 'm', '2', 'labels.json'));

    const spec1 = await loadRepositoryVersion(v1!, { profile: false });
    // Three stages, planned once the workers that will hold them have joined.
    expect(spec1.cuts).toBeUndefined();
    expect(spec1.plan?.stages).toBe(3);
    expect((await createDeployment(spec1)).expectedStages).toBe(3);
    expect(spec1.labels).toEqual(['a', 'b', 'c']);
    const spec2 = await loadRepositoryVersion(v2!, { profile: false });
    expect(spec2.cuts).toEqual([2]);
    expect(spec2.labels).toEqual(['x', 'y', 'z']);
    expect(spec2.version).toBe('2');
    // float16 weights: every shipped weight is a float16 value, within half a float16 step of the original.
    const original = tinyModel(1);
    const deployment = await createDeployment(spec2);
    for (const stage of deployment.stages) {
      for (const tensor of stage.blobs.tensors) {
        expect(tensor.entry.quantization).toEqual({ dtype: 'float16' });
        const got = decodeStored(await readBlob(tensor), tensor.entry.quantization);
        const want = original.weights
          .find((w) => w.originalName === tensor.name)!
          .read()
          .dataSync() as Float32Array;
        got.forEach((g, k) => {
          expect(Math.abs(g - want[k]!)).toBeLessThanOrEqual(Math.abs(want[k]!) * 2 ** -11 + 2 ** -25);
        });
      }
    }
  });

  it('gives a clear error for an unavailable version', async () => {
    const repo = path.join(root, 'broken');
    await mkdir(path.join(repo, 'm', '1'), { recursive: true });
    const [m] = (await scanRepository(repo)).models;
    await expectDinferError(
      loadRepositoryVersion(m!.versions[0]!),
      DinferErrorCode.MODEL_CORRUPT,
      /m@1: no model\.json/,
    );
  });
});

describe('startMaster with a repository', () => {
  // No cluster token: these masters stop at the repository before any worker could join.
  const ports = {
    httpHost: '127.0.0.1',
    httpPort: 0,
    clusterHost: '127.0.0.1',
    clusterPort: 0,
    insecure: true,
  } as const;

  it('takes exactly one of a model and a repository, and polls only a repository', async () => {
    await expectDinferError(
      startMaster({ ...ports }),
      DinferErrorCode.INVALID_ARGUMENT,
      /--model.*--model-repo/,
    );
    await expectDinferError(
      startMaster({ ...ports, model: 'm.json', modelRepo: root }),
      DinferErrorCode.INVALID_ARGUMENT,
      /exclude each other/,
    );
    await expectDinferError(
      startMaster({ ...ports, model: 'm.json', pollRepoSeconds: 5 }),
      DinferErrorCode.INVALID_ARGUMENT,
      /--poll-repo needs --model-repo/,
    );
  });

  it('refuses a repository with nothing loadable, naming why', async () => {
    const repo = path.join(root, 'nothing');
    await mkdir(path.join(repo, 'm', '1'), { recursive: true });
    await expectDinferError(
      startMaster({ ...ports, modelRepo: repo, profile: false }),
      DinferErrorCode.MODEL_NOT_FOUND,
      /has no loadable model.*"m": no loadable version.*no model\.json/,
    );
  });

  it('is wired into `dinfer master`', async () => {
    const err: string[] = [];
    const io: CliIo = { out: () => {}, err: (t) => err.push(t) };
    const code = await runCli(
      ['node', 'dinfer', 'master', '--model', 'a.json', '--model-repo', root, '--insecure'],
      io,
    );
    expect(code).toBe(1);
    expect(err.join('')).toMatch(/DINFER_ERR_INVALID_ARGUMENT: --model and --model-repo exclude each other/);
    const badPoll = await runCli(['node', 'dinfer', 'master', '--model-repo', root, '--poll-repo', '0'], io);
    expect(badPoll).toBe(2);
    expect(err.join('')).toMatch(/--poll-repo.*expected a positive number/);
  });
});
