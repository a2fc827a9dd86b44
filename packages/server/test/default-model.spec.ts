/**
 * `dinfer up`'s default model comes from the server's own dependencies (core's seeded
 * ResNet50), cached in the same place and form as the examples' copy.
 */

import { stat } from 'node:fs/promises';
import path from 'node:path';
import { loadExampleModel } from '@dinfer/core/models';
import { initBackend } from '@dinfer/core/node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultModel } from '../src/cli/default-model.js';
import { removeTempDirs, tempDir } from './e2e-helpers.js';

let cacheDir: string;
const saved = process.env.DINFER_CACHE_DIR;

beforeAll(async () => {
  await initBackend();
  cacheDir = await tempDir('dinfer-default-model-');
  process.env.DINFER_CACHE_DIR = cacheDir;
});

afterAll(async () => {
  if (saved === undefined) delete process.env.DINFER_CACHE_DIR;
  else process.env.DINFER_CACHE_DIR = saved;
  await removeTempDirs();
});

describe('the default model of dinfer up', () => {
  it('is the seeded ResNet50, generated once into the cache the examples share', async () => {
    const messages: string[] = [];
    const io = { out: () => {}, err: (t: string) => messages.push(t) };
    const modelJson = await defaultModel(io);
    expect(modelJson).toBe(path.join(cacheDir, 'models', 'resnet50', 'model.json'));
    expect(messages.join('\n')).toMatch(/generated resnet50 example model/);
    const written = (await stat(modelJson)).mtimeMs;

    // The examples find the same entry current and load it instead of generating it again.
    const example = await loadExampleModel('resnet50');
    try {
      expect(example.modelJsonPath).toBe(modelJson);
      expect(example.model.countParams()).toBe(25_636_712);
      expect(example.model.name).toBe('resnet50');
    } finally {
      example.model.dispose();
    }
    expect(await defaultModel(io)).toBe(modelJson);
    expect((await stat(modelJson)).mtimeMs).toBe(written);
  });
});
