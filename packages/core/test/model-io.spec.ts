import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DinferErrorCode, isDinferError } from '../src/errors.js';
import { fileSystemHandler } from '../src/model/fs-handler.js';
import { loadLayersModel, readModelArtifacts, saveLayersModel } from '../src/model/io.js';
import { initBackend } from '../src/node/backend.js';
import { expectClose } from './fixtures/compare.js';
import { fixture, randomizeWeights, sampleInputs } from './fixtures/models.js';

let root: string;
let server: Server;
let baseUrl: string;

beforeAll(async () => {
  await initBackend();
  root = await mkdtemp(join(tmpdir(), 'dinfer-model-io-'));
  // A static file server over `root`, with a 500 route for error tests.
  server = createServer(async (req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    if (path === '/broken') {
      res.writeHead(500).end('boom');
      return;
    }
    try {
      const body = await readFile(join(root, path));
      res.writeHead(200, { 'content-length': body.byteLength }).end(body);
    } catch {
      res.writeHead(404).end('not found');
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await rm(root, { recursive: true, force: true });
});

async function expectCode(promise: Promise<unknown>, code: string, path?: string): Promise<Error> {
  let caught: unknown;
  try {
    await promise;
  } catch (error) {
    caught = error;
  }
  expect(isDinferError(caught)).toBe(true);
  const error = caught as Error & { code: string; details: { path?: string } };
  expect(error.code).toBe(code);
  if (path !== undefined) {
    expect(error.details.path).toBe(path);
    expect(error.message).toContain(path);
  }
  return error;
}

async function savedFixture(name: string, dir: string): Promise<tf.LayersModel> {
  const model = fixture(name).build();
  await saveLayersModel(model, join(root, dir));
  return model;
}

function samePredictions(a: tf.LayersModel, b: tf.LayersModel): void {
  const inputs = sampleInputs(a);
  const x = inputs.length === 1 ? inputs[0]! : inputs;
  const expected = a.predict(x) as tf.Tensor | tf.Tensor[];
  const actual = b.predict(x) as tf.Tensor | tf.Tensor[];
  expectClose(actual, expected, 0);
  tf.dispose([inputs, expected, actual] as tf.TensorContainer);
}

describe('saveLayersModel / loadLayersModel', () => {
  it('round-trips a model through model.json + group1-shard files with identical predictions', async () => {
    const model = fixture('residual add block').build();
    const dir = join(root, 'residual');
    const saved = await saveLayersModel(model, dir);
    expect(saved.modelJsonPath).toBe(join(dir, 'model.json'));
    expect(saved.weightBytes).toBe(model.countParams() * 4);
    const files = (await readdir(dir)).sort();
    expect(files).toEqual(['group1-shard1of1.bin', 'model.json']);
    const shard = await readFile(join(dir, 'group1-shard1of1.bin'));
    expect(saved.weightsSha256).toBe(createHash('sha256').update(shard).digest('hex'));
    const json = JSON.parse(await readFile(saved.modelJsonPath, 'utf8'));
    expect(json.format).toBe('layers-model');
    expect(json.weightsManifest[0].paths).toEqual(['group1-shard1of1.bin']);
    samePredictions(model, await loadLayersModel(saved.modelJsonPath));
    samePredictions(model, await loadLayersModel(dir));
    samePredictions(model, await loadLayersModel(pathToFileURL(saved.modelJsonPath).href));
  });

  it('splits weights over 4 MiB into several shards that plain TF.js reads back', async () => {
    const model = tf.sequential({
      layers: [tf.layers.dense({ units: 1100, inputShape: [1000], name: 'big' })],
    });
    randomizeWeights(model, 3);
    const dir = join(root, 'big');
    const saved = await saveLayersModel(model, dir);
    const shards = (await readdir(dir)).filter((f) => f.endsWith('.bin')).sort();
    expect(shards).toEqual(['group1-shard1of2.bin', 'group1-shard2of2.bin']);
    const bytes = await Promise.all(shards.map((s) => readFile(join(dir, s))));
    expect(bytes[0]!.byteLength).toBe(4 * 1024 * 1024);
    expect(saved.weightBytes).toBe((1000 * 1100 + 1100) * 4);
    const hash = createHash('sha256');
    for (const b of bytes) hash.update(b);
    expect(saved.weightsSha256).toBe(hash.digest('hex'));
    const plain = await tf.loadLayersModel(fileSystemHandler(saved.modelJsonPath));
    samePredictions(model, plain);
  });

  it('model.save(fileSystemHandler(dir)) writes artifacts that loadLayersModel reads', async () => {
    const model = fixture('nested models as layers').build();
    const dir = join(root, 'nested-handler');
    await model.save(fileSystemHandler(dir));
    samePredictions(model, await loadLayersModel(join(dir, 'model.json')));
  });

  it('loads over HTTP with shards resolved relative to model.json', async () => {
    const model = await savedFixture('multi-input multi-output', 'http/multi');
    const loaded = await loadLayersModel(`${baseUrl}/http/multi/model.json`);
    samePredictions(model, loaded);
    const artifacts = await readModelArtifacts(`${baseUrl}/http/multi/model.json`);
    expect((artifacts.weightData as ArrayBuffer).byteLength).toBe(model.countParams() * 4);
  });
});

describe('load errors', () => {
  it('MODEL_NOT_FOUND for a missing model.json, naming the path', async () => {
    const path = join(root, 'nope', 'model.json');
    await expectCode(loadLayersModel(path), DinferErrorCode.MODEL_NOT_FOUND, path);
  });

  it('MODEL_NOT_FOUND for a missing weight shard, naming the shard', async () => {
    await savedFixture('sequential MLP', 'missing-shard');
    const shard = join(root, 'missing-shard', 'group1-shard1of1.bin');
    await rm(shard);
    await expectCode(
      loadLayersModel(join(root, 'missing-shard', 'model.json')),
      DinferErrorCode.MODEL_NOT_FOUND,
      shard,
    );
  });

  it('MODEL_CORRUPT for unparsable JSON', async () => {
    const path = join(root, 'bad-json.json');
    await writeFile(path, '{ "modelTopology": ');
    await expectCode(loadLayersModel(path), DinferErrorCode.MODEL_CORRUPT, path);
  });

  it('MODEL_CORRUPT when modelTopology is missing', async () => {
    const path = join(root, 'no-topology.json');
    await writeFile(path, JSON.stringify({ format: 'layers-model', weightsManifest: [] }));
    const error = await expectCode(loadLayersModel(path), DinferErrorCode.MODEL_CORRUPT, path);
    expect(error.message).toMatch(/modelTopology/);
  });

  it('MODEL_CORRUPT when a shard is shorter than the manifest says', async () => {
    await savedFixture('small CNN', 'short-shard');
    const path = join(root, 'short-shard', 'model.json');
    await truncate(join(root, 'short-shard', 'group1-shard1of1.bin'), 100);
    const error = await expectCode(loadLayersModel(path), DinferErrorCode.MODEL_CORRUPT, path);
    expect(error.message).toMatch(/holds 100 bytes/);
  });

  it('MODEL_CORRUPT when a shard is longer than the manifest says', async () => {
    await savedFixture('sequential MLP', 'long-shard');
    const shard = join(root, 'long-shard', 'group1-shard1of1.bin');
    await writeFile(shard, Buffer.concat([await readFile(shard), Buffer.alloc(8)]));
    await expectCode(loadLayersModel(join(root, 'long-shard')), DinferErrorCode.MODEL_CORRUPT);
  });

  it('MODEL_CORRUPT for a weight path escaping the model directory', async () => {
    await savedFixture('sequential MLP', 'escape');
    const path = join(root, 'escape', 'model.json');
    const json = JSON.parse(await readFile(path, 'utf8'));
    json.weightsManifest[0].paths = ['../missing-shard/model.json'];
    await writeFile(path, JSON.stringify(json));
    await expectCode(loadLayersModel(path), DinferErrorCode.MODEL_CORRUPT, path);
  });

  it('MODEL_UNSUPPORTED for a graph model (format or topology)', async () => {
    const byFormat = join(root, 'graph-a.json');
    await writeFile(
      byFormat,
      JSON.stringify({ format: 'graph-model', modelTopology: { node: [] }, weightsManifest: [] }),
    );
    await expectCode(loadLayersModel(byFormat), DinferErrorCode.MODEL_UNSUPPORTED, byFormat);
    const byTopology = join(root, 'graph-b.json');
    await writeFile(
      byTopology,
      JSON.stringify({ modelTopology: { node: [], versions: {} }, weightsManifest: [] }),
    );
    await expectCode(loadLayersModel(byTopology), DinferErrorCode.MODEL_UNSUPPORTED, byTopology);
  });

  it('MODEL_UNSUPPORTED for an unknown layer class', async () => {
    await savedFixture('sequential MLP', 'unknown-layer');
    const path = join(root, 'unknown-layer', 'model.json');
    const json = JSON.parse(await readFile(path, 'utf8'));
    json.modelTopology.config.layers[0].class_name = 'NoSuchLayer';
    await writeFile(path, JSON.stringify(json));
    await expectCode(loadLayersModel(path), DinferErrorCode.MODEL_UNSUPPORTED, path);
  });

  it('MODEL_IO when the model is larger than maxBytes', async () => {
    await savedFixture('small CNN', 'limit');
    const error = await expectCode(
      loadLayersModel(join(root, 'limit', 'model.json'), { maxBytes: 500 }),
      DinferErrorCode.MODEL_IO,
    );
    expect(error.message).toMatch(/over the limit of 500/);
    await expectCode(
      loadLayersModel(`${baseUrl}/limit/model.json`, { maxBytes: 2000 }),
      DinferErrorCode.MODEL_IO,
    );
  });

  it('ABORTED when the signal is already aborted', async () => {
    await expectCode(
      loadLayersModel(join(root, 'limit'), { signal: AbortSignal.abort() }),
      DinferErrorCode.ABORTED,
    );
    await expectCode(
      loadLayersModel(`${baseUrl}/limit/model.json`, { signal: AbortSignal.abort() }),
      DinferErrorCode.ABORTED,
    );
  });

  it('HTTP: 404 is MODEL_NOT_FOUND with the URL, 500 is MODEL_IO, a missing shard names the shard URL', async () => {
    const missing = `${baseUrl}/nothing/model.json`;
    await expectCode(loadLayersModel(missing), DinferErrorCode.MODEL_NOT_FOUND, missing);
    await expectCode(loadLayersModel(`${baseUrl}/broken`), DinferErrorCode.MODEL_IO);
    await savedFixture('sequential MLP', 'http-missing-shard');
    await rm(join(root, 'http-missing-shard', 'group1-shard1of1.bin'));
    await expectCode(
      loadLayersModel(`${baseUrl}/http-missing-shard/model.json`),
      DinferErrorCode.MODEL_NOT_FOUND,
      `${baseUrl}/http-missing-shard/group1-shard1of1.bin`,
    );
  });

  it('HTTP: a non-JSON body is MODEL_CORRUPT', async () => {
    await writeFile(join(root, 'garbage.json'), 'not json at all');
    await expectCode(
      loadLayersModel(`${baseUrl}/garbage.json`),
      DinferErrorCode.MODEL_CORRUPT,
      `${baseUrl}/garbage.json`,
    );
  });
});
