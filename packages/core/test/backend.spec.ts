import * as tf from '@tensorflow/tfjs';
import { afterEach, describe, expect, it } from 'vitest';
import { describeBackend, parseBackendName } from '../src/backend-info.js';
import { DinferError, DinferErrorCode } from '../src/errors.js';
import { initBackend } from '../src/node/backend.js';

describe('initBackend', () => {
  const saved = process.env.DINFER_BACKEND;
  afterEach(() => {
    if (saved === undefined) delete process.env.DINFER_BACKEND;
    else process.env.DINFER_BACKEND = saved;
  });

  it('picks the fastest backend that loads and says why faster ones were skipped', async () => {
    delete process.env.DINFER_BACKEND;
    const info = await initBackend();
    expect(tf.getBackend()).toBe(info.name);
    expect(info.forced).toBe(false);
    // tfjs-node(-gpu) are installed here without their native binary: both must be skipped
    // with a reason, and wasm must win over cpu.
    if (info.name !== 'tensorflow') {
      expect(info.skipped.map((s) => s.source)).toEqual(
        expect.arrayContaining(['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']),
      );
      for (const s of info.skipped) expect(s.reason.length).toBeGreaterThan(0);
      expect(info.name).toBe('wasm');
    }
    expect(describeBackend(info)).toContain(info.name);
  });

  it('forces cpu through the option and through DINFER_BACKEND', async () => {
    const viaOption = await initBackend({ backend: 'cpu' });
    expect(viaOption).toMatchObject({ name: 'cpu', forced: true });
    expect(tf.getBackend()).toBe('cpu');
    process.env.DINFER_BACKEND = 'wasm';
    const viaEnv = await initBackend();
    expect(viaEnv).toMatchObject({ name: 'wasm', forced: true });
    expect(tf.getBackend()).toBe('wasm');
  });

  it('computes the same result on wasm and cpu', async () => {
    const x = tf.tensor2d([
      [1, 2],
      [3, 4],
    ]);
    await initBackend({ backend: 'cpu' });
    const onCpu = tf.matMul(x, x).arraySync();
    await initBackend({ backend: 'wasm' });
    const y = tf.tensor2d([
      [1, 2],
      [3, 4],
    ]);
    expect(tf.matMul(y, y).arraySync()).toEqual(onCpu);
    tf.dispose([x, y]);
  });

  it('fails clearly when a forced backend cannot load', async () => {
    const error = await initBackend({ backend: 'tensorflow' }).catch((e: unknown) => e);
    if (tf.getBackend() === 'tensorflow') return; // a machine with tfjs-node really installed
    expect(error).toBeInstanceOf(DinferError);
    expect((error as DinferError).code).toBe(DinferErrorCode.BACKEND_UNAVAILABLE);
    expect((error as DinferError).message).toMatch(/backend "tensorflow" was requested but cannot be loaded/);
    expect((error as DinferError).message).toMatch(/tfjs-node/);
  });

  it('rejects unknown backend names', () => {
    expect(() => parseBackendName('webgpu')).toThrow(/unknown backend "webgpu"/);
    expect(parseBackendName(' WASM ')).toBe('wasm');
  });
});
