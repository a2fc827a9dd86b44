import assert from 'node:assert/strict';
import type { Placement, Scheduler, StageRequirement, WorkerView } from '../scheduler.js';

/** Registers one named async test; pass vitest's `it`, node:test's `test`, jest's `test`... */
export type SuiteTest = (name: string, fn: () => Promise<void>) => void;

/** What a scheduler under test claims. */
export interface SchedulerSuiteOptions {
  /** The scheduler never places a stage on a worker without the memory for it. Default true. */
  readonly respectsMemory?: boolean;
}

const GiB = 1024 ** 3;

function worker(id: string, overrides: Partial<WorkerView> = {}): WorkerView {
  return {
    id,
    name: `worker-${id}`,
    capabilities: { backend: 'wasm', cores: 2, memoryBytes: 8 * GiB, score: 10 },
    load: { cpu: 0.1, freeMemoryBytes: 8 * GiB, queueLength: 0, latencyMs: 20 },
    inflight: 0,
    healthy: true,
    ...overrides,
  };
}

function stages(count: number, memoryBytes = 100 * 1024 ** 2): StageRequirement[] {
  return Array.from({ length: count }, (_, index) => ({
    index,
    weightBytes: memoryBytes / 2,
    memoryBytes,
    estimatedMs: 10 + index,
  }));
}

function assertWellFormed(placement: Placement, stageCount: number, workers: readonly WorkerView[]): void {
  assert.equal(placement.stages.length, stageCount, 'one entry per stage');
  const ids = new Set(workers.map((w) => w.id));
  for (const [i, list] of placement.stages.entries()) {
    assert.equal(new Set(list).size, list.length, `stage ${i} lists a worker twice`);
    for (const id of list) assert.ok(ids.has(id), `stage ${i} placed on unknown worker ${id}`);
  }
}

/**
 * The scheduler compliance suite, runner-agnostic: registers its tests through `test`.
 * `factory` must return a fresh scheduler each call.
 */
export function schedulerSuite(
  test: SuiteTest,
  factory: () => Scheduler,
  options: SchedulerSuiteOptions = {},
): void {
  const respectsMemory = options.respectsMemory ?? true;

  test('places every stage when workers equal stages, one stage per worker', async () => {
    const ws = [worker('w1'), worker('w2'), worker('w3')];
    const placement = factory().place({ stages: stages(3), workers: ws });
    assertWellFormed(placement, 3, ws);
    for (const list of placement.stages) assert.equal(list.length, 1);
    assert.equal(new Set(placement.stages.flat()).size, 3, 'each worker holds a different stage');
  });

  test('uses every worker as a replica when workers outnumber stages', async () => {
    const ws = Array.from({ length: 5 }, (_, i) => worker(`w${i + 1}`));
    const placement = factory().place({ stages: stages(2), workers: ws });
    assertWellFormed(placement, 2, ws);
    assert.equal(new Set(placement.stages.flat()).size, 5, 'every worker holds a stage');
    for (const list of placement.stages) assert.ok(list.length >= 1);
  });

  test('places every stage when stages outnumber workers', async () => {
    const ws = [worker('w1'), worker('w2')];
    const placement = factory().place({ stages: stages(5), workers: ws });
    assertWellFormed(placement, 5, ws);
    for (const [i, list] of placement.stages.entries()) assert.ok(list.length >= 1, `stage ${i} unplaced`);
  });

  test('is deterministic and stable when nothing changed', async () => {
    const ws = [worker('w1'), worker('w2'), worker('w3'), worker('w4')];
    const first = factory().place({ stages: stages(3), workers: ws });
    const again = factory().place({ stages: stages(3), workers: ws });
    assert.deepEqual(again, first);
    const replaced = factory().place({ stages: stages(3), workers: ws, current: first });
    assert.deepEqual(replaced, first);
  });

  test('re-places only the stages of a lost worker', async () => {
    const ws = [worker('w1'), worker('w2'), worker('w3')];
    const scheduler = factory();
    const first = scheduler.place({ stages: stages(3), workers: ws });
    const lost = first.stages[1]?.[0];
    assert.ok(lost);
    const survivors = ws.filter((w) => w.id !== lost);
    const next = scheduler.place({ stages: stages(3), workers: survivors, current: first });
    assertWellFormed(next, 3, survivors);
    for (const [i, list] of next.stages.entries()) {
      assert.ok(list.length >= 1, `stage ${i} unplaced after losing ${lost}`);
      const before = first.stages[i] ?? [];
      if (!before.includes(lost)) {
        for (const id of before) assert.ok(list.includes(id), `stage ${i} moved off healthy worker ${id}`);
      }
    }
  });

  test('returns empty placements, without throwing, when there are no workers', async () => {
    const placement = factory().place({ stages: stages(2), workers: [] });
    assert.deepEqual(placement.stages, [[], []]);
  });

  if (respectsMemory) {
    test('never places a stage on a worker without the memory for it', async () => {
      const small = worker('small', {
        capabilities: { backend: 'wasm', cores: 2, memoryBytes: 50 * 1024 ** 2, score: 50 },
        load: { cpu: 0, freeMemoryBytes: 50 * 1024 ** 2, queueLength: 0, latencyMs: 1 },
      });
      const big = worker('big');
      const placement = factory().place({ stages: stages(2), workers: [small, big] });
      assertWellFormed(placement, 2, [small, big]);
      assert.ok(!placement.stages.flat().includes('small'), 'a 100 MiB stage went to a 50 MiB worker');
      assert.deepEqual(placement.stages, [['big'], ['big']]);
    });

    test('leaves a stage that fits nowhere empty instead of throwing', async () => {
      const ws = [worker('w1'), worker('w2')];
      const huge = stages(2);
      const placement = factory().place({
        stages: [huge[0] as StageRequirement, { ...(huge[1] as StageRequirement), memoryBytes: 64 * GiB }],
        workers: ws,
      });
      assertWellFormed(placement, 2, ws);
      assert.ok((placement.stages[0]?.length ?? 0) >= 1);
      assert.deepEqual(placement.stages[1], []);
    });
  }

  test('routes only to the replicas offered', async () => {
    const scheduler = factory();
    const replicas = [worker('w1'), worker('w2'), worker('w3')];
    for (let i = 0; i < 100; i++) {
      const chosen = scheduler.route(i % 2, replicas);
      assert.ok(
        replicas.some((r) => r.id === chosen),
        'route returned a worker id that was not offered',
      );
    }
    const only = worker('solo');
    assert.equal(scheduler.route(0, [only]), only.id);
  });

  test('spreads requests over equal idle replicas', async () => {
    const scheduler = factory();
    const replicas = [worker('w1'), worker('w2')];
    const counts = new Map<string, number>();
    for (let i = 0; i < 100; i++) {
      const chosen = scheduler.route(0, replicas);
      counts.set(chosen, (counts.get(chosen) ?? 0) + 1);
    }
    for (const r of replicas)
      assert.ok((counts.get(r.id) ?? 0) >= 25, `replica ${r.id} starved: ${counts.get(r.id)}`);
  });
}
