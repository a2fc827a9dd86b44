/**
 * Smoke test of `dinfer up --exit-when-ready` as a child process: a master and two worker
 * processes come up for the MNIST CNN, the banner names the URLs, and the command exits 0.
 */

import { loadExampleModel } from '@dinfer/core/models';
import { initBackend } from '@dinfer/core/node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  killAllChildren,
  listFiles,
  removeTempDirs,
  spawnCli,
  TRANSPORTS,
  tempDir,
  withTimeout,
} from './e2e-helpers.js';

beforeAll(async () => {
  await initBackend();
});

afterAll(async () => {
  await killAllChildren();
  await removeTempDirs();
});

describe.each(TRANSPORTS)('dinfer up over %s', (transport) => {
  it('starts a 2-worker cluster, prints the URLs and exits 0 once ready', async () => {
    const { model, modelJsonPath } = await loadExampleModel('mnist-cnn');
    model.dispose();
    const cacheDir = await tempDir('dinfer-e2e-up-');
    const up = spawnCli('up', [
      'up',
      '--model',
      modelJsonPath,
      '--workers',
      '2',
      '--http-port',
      '0',
      '--transport',
      transport,
      '--cache-dir',
      cacheDir,
      '--exit-when-ready',
    ]);
    const exit = await withTimeout(up.exited, 60_000, `dinfer up to exit; output:\n${up.output()}`);
    const output = up.output();
    expect(exit, output).toEqual({ code: 0, signal: null });
    const base = /(http:\/\/127\.0\.0\.1:(\d+))\/api\/infer/.exec(output);
    expect(base, output).not.toBeNull();
    expect(Number(base![2])).toBeGreaterThan(0); // port 0 was replaced by the bound port
    expect(output).toContain(`${base![1]}/v2/models/mnist_cnn/infer`);
    expect(output).toContain(`${base![1]}/v2/health/ready`);
    expect(output).toMatch(/ready: serving model "mnist_cnn"/);
    expect(output).toMatch(/worker-1/);
    expect(output).toMatch(/worker-2/);
    // Both workers received their shards through the cache directory given.
    expect((await listFiles(cacheDir)).length).toBeGreaterThan(0);
  });
});
