/**
 * A plain TF.js process of `pnpm bench:pipeline`, forked by `pipeline.js` with an IPC channel:
 * it loads the example model and, on `{ type: 'run', count }`, runs `model.predict` back to
 * back `count` times, reporting `{ type: 'ran', ms, times }`. Two of them at once show what
 * the machine gives two independent processes: the ceiling a 2-stage pipeline is measured
 * against. Exits when the IPC channel goes away.
 *
 * @module
 */

import { loadExampleModel } from '@dinfer/core/models';
import { initBackend } from '@dinfer/core/node';
import { type ChildFailure, type ProcessTimes, processTimes, timesBetween } from './bench-child.js';
import { makeInputs } from './bench-inputs.js';
import { predictOnce } from './local-predict.js';

/** Messages this process sends to the bench. */
export type PredictProcessReport =
  | { readonly type: 'ready' }
  | { readonly type: 'ran'; readonly ms: number; readonly times: ProcessTimes }
  | ChildFailure;

/** Messages the bench sends to this process. */
export type PredictProcessCommand = { readonly type: 'run'; readonly count: number };

function report(message: PredictProcessReport): void {
  process.send?.(message);
}

async function main(): Promise<void> {
  if (process.send === undefined) throw new Error('predict-process must be forked with an IPC channel');
  await initBackend();
  const { model } = await loadExampleModel('resnet50');
  const inputs = makeInputs(8);
  await predictOnce(model, inputs[0]!);
  process.on('message', async (message: PredictProcessCommand) => {
    if (message?.type !== 'run') return;
    const before = processTimes();
    const start = performance.now();
    for (let i = 0; i < message.count; i++) await predictOnce(model, inputs[i % inputs.length]!);
    report({ type: 'ran', ms: performance.now() - start, times: timesBetween(before, processTimes()) });
  });
  process.on('disconnect', () => process.exit(0));
  report({ type: 'ready' });
}

main().catch((error: unknown) => {
  report({ type: 'failed', error: error instanceof Error ? error.message : String(error) });
  process.exitCode = 1;
  setTimeout(() => process.exit(1), 100).unref();
});
