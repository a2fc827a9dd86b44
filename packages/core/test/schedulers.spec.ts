import { describe, expect, it } from 'vitest';
import { capabilityBasedScheduler } from '../src/place/capability-based.js';
import { fallbackScheduler } from '../src/place/fallback.js';
import { loadBasedScheduler } from '../src/place/load-based.js';
import { roundRobinScheduler } from '../src/place/round-robin.js';
import { isScheduler, type Scheduler, type WorkerView } from '../src/scheduler.js';
import { schedulerSuite } from '../src/testing/scheduler-suite.js';

const GiB = 1024 ** 3;
const w = (id: string, patch: Partial<WorkerView> = {}): WorkerView => ({
  id,
  name: `worker-${id}`,
  capabilities: { backend: 'wasm', cores: 2, memoryBytes: 8 * GiB, score: 10 },
  load: { cpu: 0, freeMemoryBytes: 8 * GiB, queueLength: 0, latencyMs: 10 },
  inflight: 0,
  healthy: true,
  ...patch,
});
const stage = (index: number, estimatedMs: number, memoryBytes = 1e6) => ({
  index,
  estimatedMs,
  memoryBytes,
  weightBytes: memoryBytes,
});

describe('round-robin scheduler', () => {
  schedulerSuite(it, roundRobinScheduler, { respectsMemory: false });
  it('cycles through replicas in order', () => {
    const s = roundRobinScheduler();
    const replicas = [w('w2'), w('w10'), w('w1')];
    expect(Array.from({ length: 6 }, () => s.route(0, replicas))).toEqual([
      'w1',
      'w2',
      'w10',
      'w1',
      'w2',
      'w10',
    ]);
  });
});

describe('load-based scheduler', () => {
  schedulerSuite(it, () => loadBasedScheduler());
  it('routes by the master-measured call time, so a replica behind a slow link gets fewer requests', () => {
    const s = loadBasedScheduler();
    // Both workers report the same compute latency; calls to `far` take 10x longer end to end.
    const near = w('near', { callMs: 12 });
    const far = w('far', { callMs: 120 });
    const counts = new Map<string, number>();
    for (let i = 0; i < 100; i++) {
      const chosen = s.route(0, [near, far]);
      counts.set(chosen, (counts.get(chosen) ?? 0) + 1);
    }
    // Only the stale-figure probes (one in 8 x 2 decisions) go to the far replica.
    expect(counts.get('far') ?? 0).toBeLessThanOrEqual(100 / 16 + 1);
    expect(counts.get('near')).toBeGreaterThan(90);
  });

  it('routes to the replica with the shortest expected wait', () => {
    const s = loadBasedScheduler();
    const busy = w('busy', {
      inflight: 4,
      load: { cpu: 0.9, freeMemoryBytes: GiB, queueLength: 3, latencyMs: 50 },
    });
    const idle = w('idle', { load: { cpu: 0.1, freeMemoryBytes: GiB, queueLength: 0, latencyMs: 40 } });
    for (let i = 0; i < 10; i++) expect(s.route(0, [busy, idle])).toBe('idle');
  });
  it('probes a replica left alone for 8 × replicas requests, so a stale latency figure is measured again', () => {
    const s = loadBasedScheduler();
    const quick = w('quick', { load: { cpu: 0, freeMemoryBytes: GiB, queueLength: 0, latencyMs: 1 } });
    const stale = w('stale', { load: { cpu: 0, freeMemoryBytes: GiB, queueLength: 0, latencyMs: 100 } });
    const picks = Array.from({ length: 64 }, () => s.route(0, [quick, stale]));
    const staleAt = picks.flatMap((id, i) => (id === 'stale' ? [i] : []));
    expect(staleAt).toEqual([16, 32, 48]);
    // Each stage keeps its own count: a first request of another stage is no probe.
    expect(s.route(1, [quick, stale])).toBe('quick');
  });
  it('gives spare workers to the stage with the most work per replica', () => {
    const placement = loadBasedScheduler().place({
      stages: [stage(0, 10), stage(1, 40)],
      workers: [w('a'), w('b'), w('c'), w('d')],
    });
    expect(placement.stages[1]?.length).toBeGreaterThan(placement.stages[0]?.length ?? 0);
  });
  it('uses free memory from heartbeats to decide what fits', () => {
    const full = w('full', { load: { cpu: 0, freeMemoryBytes: 1000, queueLength: 0, latencyMs: 1 } });
    const placement = loadBasedScheduler().place({ stages: [stage(0, 5, 1e6)], workers: [full, w('roomy')] });
    expect(placement.stages).toEqual([['roomy']]);
  });
});

describe('capability-based scheduler', () => {
  schedulerSuite(it, () => capabilityBasedScheduler());
  it('puts the biggest stage on the fastest worker', () => {
    const fast = w('fast', {
      capabilities: { backend: 'tensorflow', cores: 16, memoryBytes: 8 * GiB, score: 100 },
    });
    const slow = w('slow', { capabilities: { backend: 'wasm', cores: 2, memoryBytes: 8 * GiB, score: 10 } });
    const placement = capabilityBasedScheduler().place({
      stages: [stage(0, 5), stage(1, 50)],
      workers: [slow, fast],
    });
    expect(placement.stages).toEqual([['slow'], ['fast']]);
  });
  it('counts memory of stages already held', () => {
    const tight = w('tight', { capabilities: { backend: 'wasm', cores: 2, memoryBytes: 1.5e6, score: 100 } });
    const placement = capabilityBasedScheduler().place({
      stages: [stage(0, 5), stage(1, 5), stage(2, 5)],
      workers: [tight],
    });
    expect(placement.stages.flat()).toEqual(['tight']);
  });
  it('honours a backend filter', () => {
    const s = capabilityBasedScheduler({ backends: ['tensorflow'] });
    expect(s.place({ stages: [stage(0, 5)], workers: [w('wasm-only')] }).stages).toEqual([[]]);
  });
  it('routes in proportion to speed', () => {
    const s = capabilityBasedScheduler();
    const fast = w('fast', {
      capabilities: { backend: 'wasm', cores: 2, memoryBytes: GiB, score: 30 },
      inflight: 2,
    });
    const slow = w('slow', {
      capabilities: { backend: 'wasm', cores: 2, memoryBytes: GiB, score: 10 },
      inflight: 1,
    });
    expect(s.route(0, [fast, slow])).toBe('fast'); // 3/30 < 2/10
  });
});

describe('fallbackScheduler', () => {
  const failing: Scheduler = {
    ...roundRobinScheduler(),
    name: 'broken',
    place: () => {
      throw new Error('boom');
    },
    route: () => {
      throw new Error('boom');
    },
  };
  schedulerSuite(it, () => fallbackScheduler(capabilityBasedScheduler(), roundRobinScheduler()), {
    respectsMemory: false,
  });
  it('fills stages the primary could not place from the secondary', () => {
    const s = fallbackScheduler(
      capabilityBasedScheduler({ backends: ['tensorflow'] }),
      roundRobinScheduler(),
    );
    expect(isScheduler(s)).toBe(true);
    expect(s.place({ stages: [stage(0, 5)], workers: [w('a')] }).stages).toEqual([['a']]);
  });
  it('survives a primary that throws', () => {
    const s = fallbackScheduler(failing, roundRobinScheduler());
    expect(s.place({ stages: [stage(0, 5)], workers: [w('a')] }).stages).toEqual([['a']]);
    expect(s.route(0, [w('a')])).toBe('a');
  });
});
