/**
 * Removes what a crashed or interrupted run left behind: every namespace and root-namespace
 * link whose name carries the harness prefix and the id of a process that no longer runs.
 * Processes still running inside such a namespace are killed first. Objects of runs still
 * alive (another test file, another engineer) are left alone.
 *
 * @module
 */
import { ip, tryRun } from './commands.js';
import { listLinks, listNamespaces, namespacePids } from './inventory.js';
import { ownerOf } from './names.js';

/** True while process `pid` exists. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** True for a harness object whose owning process is gone. */
export function isStale(name: string): boolean {
  const owner = ownerOf(name);
  return owner !== undefined && !isAlive(owner);
}

/** What {@link sweepStale} removed. */
export interface SweepReport {
  readonly namespaces: readonly string[];
  readonly links: readonly string[];
  readonly killedPids: readonly number[];
}

/** Removes stale harness namespaces and links (see the module comment). */
export async function sweepStale(): Promise<SweepReport> {
  const namespaces = (await listNamespaces()).filter(isStale);
  const killedPids: number[] = [];
  for (const namespace of namespaces) {
    for (const pid of await namespacePids(namespace)) {
      try {
        process.kill(pid, 'SIGKILL');
        killedPids.push(pid);
      } catch {
        // Already gone.
      }
    }
  }
  // Deleting a link deletes its veth peer at once; namespace teardown alone is deferred.
  const links = (await listLinks()).filter(isStale);
  for (const link of links) await tryRun('ip', ['link', 'del', link]);
  for (const namespace of namespaces) await ip('netns', 'del', namespace);
  return { namespaces, links, killedPids };
}
