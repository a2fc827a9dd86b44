import type { StageRequirement, WorkerView } from '@dinfer/core';
import { schedulerSuite } from '@dinfer/core/testing';
import { describe, expect, it } from 'vitest';
import { spreadScheduler } from '../src/custom/spread-scheduler.js';

describe('spreadScheduler (the custom scheduler example) passes the scheduler compliance suite', () => {
  schedulerSuite(it, () => spreadScheduler(), { respectsMemory: false });
});

describe('spreadScheduler with a name preference passes it too', () => {
  schedulerSuite(
    it,
    () => spreadScheduler({ prefer: (stage, w) => stage.index !== 0 || w.name.endsWith('1') }),
    {
      respectsMemory: false,
    },
  );
});

describe('spreadScheduler', () => {
  const view = (id: string, name: string, inflight = 0): WorkerView => ({
    id,
    name,
    capabilities: { backend: 'wasm', cores: 1, memoryBytes: 1e9, score: 1 },
    inflight,
    healthy: true,
  });
  const stage = (index: number, estimatedMs: number): StageRequirement => ({
    index,
    estimatedMs,
    weightBytes: 1,
    memoryBytes: 1,
  });

  it('pins a stage to the workers its preference accepts, by name', () => {
    const scheduler = spreadScheduler({ prefer: (s, w) => s.index !== 1 || w.name.startsWith('gpu-') });
    const workers = [view('w1', 'cpu-a'), view('w2', 'gpu-a'), view('w3', 'cpu-b')];
    const placement = scheduler.place({ stages: [stage(0, 10), stage(1, 30)], workers });
    expect(placement.stages[1]).toEqual(['w2']);
    expect(placement.stages[0]).toContain('w1');
    expect(placement.stages.flat().sort()).toEqual(['w1', 'w2', 'w3']);
  });

  it('routes to the replica with the fewest requests in flight', () => {
    const scheduler = spreadScheduler();
    const replicas = [view('w1', 'a', 3), view('w2', 'b', 1), view('w3', 'c', 2)];
    for (let i = 0; i < 5; i++) expect(scheduler.route(0, replicas)).toBe('w2');
  });
});
