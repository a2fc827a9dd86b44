/**
 * Whether this machine can run the namespaced tests: Linux, root, `ip netns`, veth pairs,
 * bridges and `tc tbf`. The probe really creates (and removes) a namespace, a bridge and a
 * shaped veth pair, so a missing kernel feature is found here rather than halfway through a
 * test. The answer says why not, for the skipped test's name.
 *
 * @module
 */
import { ip, tc, tryRun } from './commands.js';
import { networkNames } from './names.js';
import { tbfArguments } from './shaping.js';

/** The answer of {@link probeNetnsSupport}. */
export type NetnsSupport =
  | { readonly supported: true }
  | { readonly supported: false; readonly reason: string };

/** The probe's objects use the last sequence character, which networks reach only after 35 others. */
const PROBE_SEQUENCE = 35;

async function probe(): Promise<NetnsSupport> {
  if (process.platform !== 'linux') {
    return { supported: false, reason: `network namespaces need Linux, this is ${process.platform}` };
  }
  const uid = process.getuid?.();
  if (uid !== 0) return { supported: false, reason: `network namespaces need root, this runs as uid ${uid}` };
  for (const tool of ['ip', 'tc']) {
    if ((await tryRun(tool, ['-V'])) === undefined) {
      return { supported: false, reason: `\`${tool}\` (iproute2) is not installed` };
    }
  }
  const names = networkNames(process.pid, PROBE_SEQUENCE);
  const namespace = names.namespace('probe');
  try {
    await ip('netns', 'add', namespace);
    await ip('link', 'add', names.bridge, 'type', 'bridge');
    await ip('link', 'add', names.hostEnd(0), 'type', 'veth', 'peer', 'name', names.peerEnd(0));
    await ip('link', 'set', names.peerEnd(0), 'netns', namespace);
    await ip('link', 'set', names.hostEnd(0), 'master', names.bridge);
    await tc(...tbfArguments(names.hostEnd(0), { rateMbit: 10 }));
    return { supported: true };
  } catch (error) {
    return { supported: false, reason: `cannot build a test network here: ${(error as Error).message}` };
  } finally {
    await tryRun('ip', ['link', 'del', names.hostEnd(0)]);
    await tryRun('ip', ['link', 'del', names.bridge]);
    await tryRun('ip', ['netns', 'del', namespace]);
  }
}

let answer: Promise<NetnsSupport> | undefined;

/** Probes once per process (see the module comment). */
export function probeNetnsSupport(): Promise<NetnsSupport> {
  answer ??= probe();
  return answer;
}
