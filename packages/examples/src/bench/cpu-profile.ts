/**
 * A V8 CPU profile of one window of a process' life (unlike `node --cpu-prof`, which covers
 * all of it, set-up included), written as a `.cpuprofile` that Chrome DevTools opens.
 *
 * @module
 */
import { writeFile } from 'node:fs/promises';
import { Session } from 'node:inspector/promises';

/** A running profile; `stop` writes it. */
export interface CpuProfileWindow {
  /** Stops profiling and writes the profile to `file`. */
  stop(file: string): Promise<void>;
}

/** Starts profiling this process (sampling every `intervalUs` microseconds, default 500). */
export async function startCpuProfile(intervalUs = 500): Promise<CpuProfileWindow> {
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: intervalUs });
  await session.post('Profiler.start');
  return {
    async stop(file) {
      const { profile } = await session.post('Profiler.stop');
      session.disconnect();
      await writeFile(file, JSON.stringify(profile));
    },
  };
}
