/**
 * The status page in a real headless Chromium against a real cluster: a master (this
 * process) and two worker processes on loopback, serving a small model cut in two stages.
 * Chromium comes from Debian's `chromium` package (.ci/run installs it).
 */

import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type ClusterStatus, localInferenceService, saveLayersModel } from '@dinfer/core';
import { initBackend } from '@dinfer/core/node';
import * as tf from '@tensorflow/tfjs';
import { type BrowserContext, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type MasterHandle, startMaster } from '../src/cluster/master.js';
import { createHttpApi } from '../src/index.js';
import type { StatusReport } from '../src/status/status-report.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const cli = path.resolve(here, '../dist/cli/main.js');
const CHROMIUM = '/usr/bin/chromium';
const TOKEN = 'status-page-test-token';

/** A small dense model, three layers on each side of the cut. */
function tinyModel(): tf.LayersModel {
  const input = tf.input({ shape: [8], name: 'features' });
  let x = tf.layers.dense({ units: 16, activation: 'relu', name: 'd1' }).apply(input) as tf.SymbolicTensor;
  x = tf.layers.dense({ units: 16, activation: 'relu', name: 'd2' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.dense({ units: 16, activation: 'relu', name: 'd3' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.dense({ units: 16, activation: 'relu', name: 'd4' }).apply(x) as tf.SymbolicTensor;
  const out = tf.layers
    .dense({ units: 4, activation: 'softmax', name: 'head' })
    .apply(x) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: out, name: 'tiny_mlp' });
}

function spawnWorker(master: string, name: string, onLine: (line: string) => void): ChildProcess {
  const child = spawn(
    process.execPath,
    [cli, 'worker', '--master', master, '--name', name, '--transport', 'tcp'],
    {
      env: { ...process.env, DINFER_TOKEN: TOKEN, DINFER_BACKEND: 'cpu' },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  for (const stream of [child.stdout, child.stderr])
    stream?.on('data', (c) => onLine(`[${name}] ${String(c)}`));
  return child;
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await gone;
  clearTimeout(timer);
}

describe('status page in headless Chromium against a real cluster', () => {
  let dir: string;
  let master: MasterHandle;
  const workers: ChildProcess[] = [];
  let context: BrowserContext | undefined;
  let profile: string | undefined;
  let workerLog = '';
  // Screenshots go to the browser profile (removed afterwards), or DINFER_SCREENSHOT_DIR to keep them.
  const shotDir = () => process.env.DINFER_SCREENSHOT_DIR ?? profile ?? tmpdir();
  const browser = (): BrowserContext => {
    if (!context) throw new Error('Chromium did not start');
    return context;
  };

  beforeAll(async () => {
    expect(existsSync(cli), `${cli} missing: build @dinfer/server first`).toBe(true);
    expect(
      existsSync(CHROMIUM),
      'Chromium missing: install the Debian package "chromium" (.ci/run does)',
    ).toBe(true);
    dir = await mkdtemp(path.join(tmpdir(), 'dinfer-status-page-'));
    await initBackend({ backend: 'cpu' });
    await saveLayersModel(tinyModel(), path.join(dir, 'model'));
    master = await startMaster({
      model: path.join(dir, 'model', 'model.json'),
      name: 'tiny',
      version: '1',
      cuts: [3],
      backend: 'cpu',
      token: TOKEN,
      httpHost: '127.0.0.1',
      httpPort: 0,
      clusterHost: '127.0.0.1',
      clusterPort: 0,
      minWorkers: 2,
      heartbeatIntervalMs: 300,
    });
    workers.push(spawnWorker(master.clusterAddress, 'alpha', (l) => (workerLog += l)));
    workers.push(spawnWorker(master.clusterAddress, 'beta', (l) => (workerLog += l)));
    const timeout = new Promise((_, reject) =>
      setTimeout(() => reject(new Error(`cluster not ready in 60 s: ${workerLog}`)), 60_000).unref(),
    );
    await Promise.race([master.ready, timeout]);
    for (let i = 0; i < 6; i++) {
      const res = await fetch(`${master.httpUrl}/api/infer`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ input: [i, 1, 2, 3, 4, 5, 6, 7] }),
      });
      expect(res.status, await res.clone().text()).toBe(200);
    }
    profile = await mkdtemp(path.join(tmpdir(), 'dinfer-chromium-'));
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
      viewport: { width: 1280, height: 900 },
      timeout: 30_000,
    });
  }, 120_000);

  afterAll(async () => {
    await context?.close();
    await master?.stop();
    await Promise.all(workers.map(stopChild));
    if (profile) await rm(profile, { recursive: true, force: true });
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('answers /api/status with both workers, both stages and the requests', async () => {
    const status = (await (await fetch(`${master.httpUrl}/api/status`)).json()) as StatusReport;
    expect(status.ready).toBe(true);
    expect(status.degraded).toBe(false);
    expect(status.workers.map((w) => w.name).sort()).toEqual(['alpha', 'beta']);
    for (const w of status.workers) {
      expect(w.id).toMatch(/^w\d+-[0-9a-f]{8}$/);
      expect(w.backend).toBe('cpu');
      expect(w.state).toBe('ready');
      expect(w.breaker).toBe('closed');
      expect(w.stages.length).toBeGreaterThan(0);
    }
    expect(status.stages.map((s) => [s.index, s.layers, s.layerCount])).toEqual([
      [0, [0, 3], 3],
      [1, [3, 6], 3],
    ]);
    const served = new Set(status.stages.flatMap((s) => s.replicas));
    expect(served).toEqual(new Set(status.workers.map((w) => w.id)));
    expect(status.requests.requests).toBe(6);
    expect(status.requests.successes).toBe(6);
    expect(status.requests.latencyMs?.max).toBeGreaterThan(0);
    // The same requests reached the shared registry, with coordinator and transport metrics.
    const text = await (await fetch(`${master.httpUrl}/metrics`)).text();
    expect(text).toContain('ai_inference_requests_total{model="tiny",status="success"} 6');
    expect(text).toMatch(/^dinfer_stage_compute_seconds_count\{model="tiny",stage="1"\} 6$/m);
    expect(text).toMatch(/^ai_active_workers 2$/m);
    expect(text).toMatch(/^dinfer_transport_connections_opened_total\{transport="tcp",side="listener"\} 2$/m);
  });

  it('shows the pipeline, both workers and live numbers; screenshot is non-empty', async () => {
    const page = await browser().newPage();
    await page.goto(`${master.httpUrl}/`, { timeout: 15_000 });
    const status = (await (await fetch(`${master.httpUrl}/api/status`)).json()) as StatusReport;
    const ids = status.workers.map((w) => w.id);
    // Both workers appear in the pipeline boxes.
    for (const id of ids) {
      await page.locator(`.stage [data-worker="${id}"]`).first().waitFor({ timeout: 15_000 });
    }
    await page.waitForFunction(() => document.querySelectorAll('.stage').length === 2, null, {
      timeout: 10_000,
    });
    await page.waitForFunction(() => document.getElementById('state')?.textContent === 'ready', null, {
      timeout: 10_000,
    });
    const stages = await page.locator('.stage h3').allTextContents();
    expect(stages).toEqual(['Stage 0', 'Stage 1']);
    const stageInfo = await page.locator('.stage .info').allTextContents();
    expect(stageInfo[0]).toContain('layers 0–2');
    expect(stageInfo[1]).toContain('layers 3–5');
    const table = await page.locator('#workers').textContent();
    for (const w of status.workers) {
      expect(table).toContain(w.id);
      expect(table).toContain(w.name);
    }
    expect(await page.locator('#models').textContent()).toBe('tiny v1');
    expect(Number(await page.locator('#throughput').textContent())).toBeGreaterThan(0);
    expect(await page.locator('#requests').textContent()).toMatch(/: 6 requests$/);
    expect(Number(await page.locator('#latency-avg').textContent())).toBeGreaterThan(0);
    expect(await page.locator('#degraded').isVisible()).toBe(false);
    expect(await page.locator('#spark-throughput polyline').count()).toBe(1);
    const shot = path.join(shotDir(), `dinfer-status-page-${process.pid}.png`);
    await page.screenshot({ path: shot, fullPage: true });
    expect((await stat(shot)).size).toBeGreaterThan(10_000);
    await page.close();
  }, 60_000);

  it('shows the degraded banner and a stage computed on the master', async () => {
    const input = tf.input({ shape: [2] });
    const out = tf.layers.dense({ units: 2 }).apply(input) as tf.SymbolicTensor;
    const service = localInferenceService(tf.model({ inputs: input, outputs: out }), { name: 'm' });
    const degraded: ClusterStatus = {
      ready: true,
      degraded: true,
      workers: [],
      stages: [
        { model: 'm', version: '1', index: 0, layers: [0, 2], weightBytes: 24, replicas: [], degraded: true },
      ],
    };
    const app = createHttpApi(service, { status: () => degraded });
    await app.listen({ host: '127.0.0.1', port: 0 });
    try {
      const address = app.server.address();
      const page = await browser().newPage();
      await page.goto(`http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}/`);
      await page.locator('#degraded').waitFor({ state: 'visible', timeout: 10_000 });
      expect(await page.locator('#degraded').textContent()).toContain('Degraded mode');
      expect(await page.locator('#state').textContent()).toBe('degraded');
      expect(await page.locator('.stage.degraded .master').textContent()).toBe(
        'computed on the master (no worker)',
      );
      const shot = path.join(shotDir(), `dinfer-status-page-degraded-${process.pid}.png`);
      await page.screenshot({ path: shot });
      expect((await stat(shot)).size).toBeGreaterThan(5_000);
      await page.close();
    } finally {
      // The browser keeps its polling connection alive: drop it so close() need not wait.
      app.server.closeAllConnections();
      await app.close();
    }
  }, 30_000);
});
