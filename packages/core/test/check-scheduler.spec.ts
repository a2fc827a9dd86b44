import { describe, expect, it } from 'vitest';
import { DinferErrorCode } from '../src/errors.js';
import { placeChecked, routeChecked } from '../src/place/check-scheduler.js';
import { roundRobinScheduler } from '../src/place/round-robin.js';
import { type Placement, type Scheduler, schedulerSymbol, type WorkerView } from '../src/scheduler.js';

const view = (id: string): WorkerView => ({
  id,
  name: `n-${id}`,
  capabilities: { backend: 'wasm', cores: 1, memoryBytes: 1e9, score: 1 },
  inflight: 0,
  healthy: true,
});
const stage = (index: number) => ({ index, weightBytes: 1, memoryBytes: 1, estimatedMs: 1 });
const request = { stages: [stage(0), stage(1)], workers: [view('w1'), view('w2')] };

function answering(place: () => unknown, route: () => unknown = () => 'w1'): Scheduler {
  return {
    [schedulerSymbol]: true,
    name: 'under-test',
    place: place as () => Placement,
    route: route as () => string,
  };
}

describe('placeChecked', () => {
  it('passes a well-formed placement through unchanged', () => {
    const placement = placeChecked(roundRobinScheduler(), request);
    expect(placement.stages).toEqual([['w1'], ['w2']]);
  });

  it.each([
    ['not an object', () => null, 'expected { stages: string[][] }'],
    ['too few stages', () => ({ stages: [['w1']] }), '1 stage entries for 2 stages'],
    ['too many stages', () => ({ stages: [['w1'], ['w2'], []] }), '3 stage entries for 2 stages'],
    ['a stage that is not a list', () => ({ stages: [['w1'], 'w2'] }), 'stage 1 is not a list of worker ids'],
    [
      'an unknown id',
      () => ({ stages: [['w1'], ['w7']] }),
      'stage 1 names unknown worker "w7"; offered: w1, w2',
    ],
    [
      'an id that is not a string',
      () => ({ stages: [[1], ['w2']] }),
      'stage 0 names unknown worker 1; offered: w1, w2',
    ],
    ['a repeated id', () => ({ stages: [['w1', 'w1'], ['w2']] }), 'stage 0 lists worker w1 twice'],
    [
      'a throwing place()',
      () => {
        throw new Error('boom');
      },
      'place() threw: boom',
    ],
  ])('refuses %s with SCHEDULER_INVALID naming the scheduler', (_what, place, message) => {
    let caught: unknown;
    try {
      placeChecked(answering(place), request);
    } catch (error) {
      caught = error;
    }
    expect(caught).toMatchObject({
      code: DinferErrorCode.SCHEDULER_INVALID,
      details: { scheduler: 'under-test' },
    });
    expect((caught as Error).message).toBe(
      `scheduler "under-test" returned an invalid placement: ${message}`,
    );
  });
});

describe('routeChecked', () => {
  it('returns the id of an offered replica', () => {
    expect(
      routeChecked(
        answering(
          () => null,
          () => 'w2',
        ),
        0,
        request.workers,
      ),
    ).toBe('w2');
  });

  it.each([
    ['an id not offered', () => 'w9', 'stage 3: "w9" is not the id of an offered replica (w1, w2)'],
    [
      'a view object instead of an id',
      () => view('w1'),
      'stage 3: "object" is not the id of an offered replica (w1, w2)',
    ],
    [
      'a throwing route()',
      () => {
        throw new Error('no');
      },
      'route() threw: no',
    ],
  ])('refuses %s', (_what, route, message) => {
    expect(() =>
      routeChecked(
        answering(() => null, route),
        3,
        request.workers,
      ),
    ).toThrow(`scheduler "under-test" returned an invalid route: ${message}`);
  });
});
