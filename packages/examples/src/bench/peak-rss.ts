/**
 * The peak resident set size of a process, as Linux records it (`VmHWM` in
 * `/proc/<pid>/status`): what the bench checks against each process's memory budget.
 *
 * @module
 */
import { readFile } from 'node:fs/promises';

/** Peak RSS in bytes of `pid` (default: this process); NaN when it cannot be read. */
export async function peakRssBytes(pid: number | 'self' = 'self'): Promise<number> {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const kib = /^VmHWM:\s+(\d+)\s+kB/m.exec(status)?.[1];
    if (kib !== undefined) return Number(kib) * 1024;
  } catch {
    // not Linux, or the process is gone
  }
  return pid === 'self' ? process.memoryUsage().rss : Number.NaN;
}
