import { createWorker, describeBackend } from '@dinfer/core';
import { createBlobStore, initBackend } from '@dinfer/core/node';
import { tcpTransport } from '@dinfer/transport-tcp';
import { type ChildFailure, type ProcessTimes, processTimes } from './bench-child.js';
import { type CpuProfileWindow, startCpuProfile } from './cpu-profile.js';

/** Messages this process sends to the bench over IPC. */
export type PipelineWorkerReport =
  | { readonly type: 'ready'; readonly backend: string; readonly pid: number }
  | { readonly type: 'times'; readonly times: ProcessTimes }
  | { readonly type: 'profiled'; readonly file: string | undefined }
  | ChildFailure;

/** Messages the bench sends to this process over IPC. */
export type PipelineWorkerCommand =
  | { readonly type: 'times' }
  | { readonly type: 'profile.start' }
  | { readonly type: 'profile.stop'; readonly file: string };

function env(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`pipeline-worker: environment variable ${name} is not set`);
  return value;
}

function report(message: PipelineWorkerReport): void {
  process.send?.(message);
}

async function main(): Promise<void> {
  if (process.send === undefined) throw new Error('pipeline-worker must be forked with an IPC channel');
  const token = env('DINFER_BENCH_TOKEN');
  const backend = await initBackend();
  const worker = createWorker({
    // The bench owns the life of this process: no redial.
    transport: tcpTransport(),
    master: env('DINFER_BENCH_MASTER'),
    token,
    name: env('DINFER_BENCH_NAME'),
    store: createBlobStore({ dir: env('DINFER_BENCH_CACHE') }),
    reconnect: false,
  });
  worker.onStateChange((state) => {
    if (state === 'stopped') process.exit(0);
  });
  let profile: CpuProfileWindow | undefined;
  process.on('message', async (message: PipelineWorkerCommand) => {
    switch (message?.type) {
      case 'profile.start':
        profile = await startCpuProfile();
        return;
      case 'profile.stop': {
        const running = profile;
        profile = undefined;
        await running?.stop(message.file);
        report({ type: 'profiled', file: running === undefined ? undefined : message.file });
        return;
      }
      case 'times':
        report({ type: 'times', times: processTimes() });
        return;
    }
  });
  process.on('disconnect', () => {
    void worker.stop().finally(() => process.exit(0));
  });
  await worker.start();
  report({ type: 'ready', backend: describeBackend(backend), pid: process.pid });
}

main().catch((error: unknown) => {
  report({ type: 'failed', error: error instanceof Error ? error.message : String(error) });
  process.exitCode = 1;
  setTimeout(() => process.exit(1), 100).unref();
});
