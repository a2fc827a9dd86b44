/**
 * Core's portable modules on the web platform (no file system, no CPU clock), as a browser
 * bundle runs them: `#platform` is the web implementation here.
 */
import { describe, expect, it, vi } from 'vitest';

vi.mock('#platform', async () => await import('../src/platform/web.js'));

const { loadLayersModel, saveLayersModel } = await import('../src/model/io.js');
const { openModelArtifacts } = await import('../src/model/artifact-source.js');
const { readPartitionManifest } = await import('../src/partition/manifest.js');
const { createLoadMonitor } = await import('../src/worker/load-monitor.js');

describe('on the web platform', () => {
  it('model files on a path fail with MODEL_UNSUPPORTED that says what works instead', async () => {
    for (const attempt of [
      () => loadLayersModel('./models/m/model.json'),
      () => openModelArtifacts('/srv/m'),
      () => readPartitionManifest('./partition'),
    ]) {
      await expect(attempt()).rejects.toMatchObject({
        code: 'DINFER_ERR_MODEL_UNSUPPORTED',
        message: expect.stringMatching(/need Node\.js; .*http\(s\) URL/),
      });
    }
    const tf = await import('@tensorflow/tfjs');
    const model = tf.sequential({ layers: [tf.layers.dense({ inputShape: [2], units: 1 })] });
    await expect(saveLayersModel(model, './out')).rejects.toMatchObject({
      code: 'DINFER_ERR_MODEL_UNSUPPORTED',
    });
    model.dispose();
  });

  it('the load monitor measures CPU as the share of time spent computing', async () => {
    const monitor = createLoadMonitor({ cores: 4, memoryBytes: 1000, queueLength: () => 0, minSampleMs: 0 });
    monitor.sample();
    const start = performance.now();
    await new Promise((resolve) => setTimeout(resolve, 40));
    monitor.recordCompute(10);
    const load = monitor.sample();
    const elapsed = performance.now() - start;
    expect(load.cpu).toBeGreaterThan(0);
    expect(load.cpu).toBeCloseTo(10 / elapsed, 1);
    expect(load.freeMemoryBytes).toBe(1000);
    expect(load.latencyMs).toBe(10);
  });
});
