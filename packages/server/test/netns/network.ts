/**
 * A test network of Linux network namespaces: one namespace per host, each joined to one
 * bridge in the root namespace by a veth pair and given its own address in a private /24
 * (see `subnet.ts`). The root namespace holds only the bridge (with the `.1` address the test
 * process talks from) and the root ends of the veth pairs. A host's link can be shaped
 * (`tc tbf`, both directions), taken down and brought back up, and processes run inside a
 * host with `ip netns exec`.
 *
 * The network removes itself with {@link TestNetwork.destroy}; if the process exits or is
 * interrupted first, an exit hook removes it synchronously; if the process is killed outright,
 * the next network created (by any run) finds the leftovers by name and removes them
 * (`stale-sweep.ts`).
 *
 * @module
 */
import { spawnSync } from 'node:child_process';
import { onExit } from 'signal-exit';
import { type ChildHandle, spawnTracked } from '../e2e-helpers.js';
import { ip, runSyncQuietly, tc, tryRun } from './commands.js';
import {
  listLinks,
  listLinksSync,
  listNamespaces,
  listNamespacesSync,
  namespacePids,
  namespacePidsSync,
  prefixesInUse,
} from './inventory.js';
import { checkHostName, type NetworkNames, networkNames } from './names.js';
import { type LinkShape, tbfArguments } from './shaping.js';
import { sweepStale } from './stale-sweep.js';
import { pickSubnet, type Subnet } from './subnet.js';

/** One host of {@link NetworkOptions}: a name and, optionally, a shaped link. */
export interface HostSpec {
  /** Lower-case letters and digits, starting with a letter (at most 16). */
  readonly name: string;
  readonly shape?: LinkShape;
}

/** Options of {@link createNetwork}. */
export interface NetworkOptions {
  /** The hosts, each a name or a {@link HostSpec}; they get addresses `.2`, `.3`, ... in order. */
  readonly hosts: readonly (string | HostSpec)[];
}

/** One host (namespace) of a {@link TestNetwork}. */
export interface TestHost {
  readonly name: string;
  readonly namespace: string;
  /** The host's IPv4 address on the bridge. */
  readonly address: string;
  /** The root-namespace end of the host's veth pair (what `linkDown` takes down). */
  readonly link: string;
}

/** A running test network (see the module comment). */
export interface TestNetwork {
  readonly subnet: Subnet;
  /** The root namespace's address on the bridge: where the test process's traffic comes from. */
  readonly rootAddress: string;
  readonly hosts: readonly TestHost[];
  /** The host called `name` (throws for an unknown name). */
  host(name: string): TestHost;
  /** Shapes both directions of `host`'s link (replacing an earlier shape). */
  shape(host: string, shape: LinkShape): Promise<void>;
  /** Removes the shaping of `host`'s link. */
  unshape(host: string): Promise<void>;
  /** `ip link set <link> down`: the host is cut off until {@link TestNetwork.linkUp}. */
  linkDown(host: string): Promise<void>;
  /** `ip link set <link> up`. */
  linkUp(host: string): Promise<void>;
  /**
   * Starts `command args...` inside `host` (`ip netns exec`), tracked like every test child
   * process; it gets SIGKILL if the test process dies (where `setpriv` is installed).
   */
  spawn(
    host: string,
    name: string,
    command: string,
    args: readonly string[],
    env?: NodeJS.ProcessEnv,
  ): ChildHandle;
  /** Kills what runs in the namespaces, removes every link and namespace; idempotent. */
  destroy(): Promise<void>;
}

let networksCreated = 0;

/** Whether `setpriv --pdeathsig` exists (util-linux), checked once. */
let deathSignalWrapper: readonly string[] | undefined;
function parentDeathWrapper(): readonly string[] {
  if (deathSignalWrapper === undefined) {
    const help = spawnSync('setpriv', ['--help'], { encoding: 'utf8' });
    deathSignalWrapper =
      help.status === 0 && help.stdout.includes('--pdeathsig') ? ['setpriv', '--pdeathsig', 'KILL'] : [];
  }
  return deathSignalWrapper;
}

/** Creates a test network (see the module comment); removes stale leftovers first. */
export async function createNetwork(options: NetworkOptions): Promise<TestNetwork> {
  const specs: HostSpec[] = options.hosts.map((h) => (typeof h === 'string' ? { name: h } : h));
  const seen = new Set<string>();
  for (const { name } of specs) {
    checkHostName(name);
    if (seen.has(name)) throw new Error(`host name "${name}" is given twice`);
    seen.add(name);
  }
  if (specs.length === 0 || specs.length > 250) throw new Error('a test network has 1 to 250 hosts');
  await sweepStale();
  const sequence = networksCreated++;
  const names = networkNames(process.pid, sequence);
  const subnet = pickSubnet(process.pid + sequence, await prefixesInUse());
  const hosts: TestHost[] = specs.map((spec, i) => ({
    name: spec.name,
    namespace: names.namespace(spec.name),
    address: subnet.address(i + 2),
    link: names.hostEnd(i + 1),
  }));
  const network = new Network(names, subnet, hosts);
  try {
    await network.build(specs);
  } catch (error) {
    await network.destroy().catch(() => {});
    throw error;
  }
  return network;
}

class Network implements TestNetwork {
  readonly rootAddress: string;
  readonly #names: NetworkNames;
  readonly #byName: Map<string, TestHost>;
  #removeExitHook: (() => void) | undefined;
  #destroyed = false;

  constructor(
    names: NetworkNames,
    readonly subnet: Subnet,
    readonly hosts: readonly TestHost[],
  ) {
    this.#names = names;
    this.rootAddress = subnet.address(1);
    this.#byName = new Map(hosts.map((h) => [h.name, h]));
    // Registered before anything exists, so a half-built network is removed too.
    this.#removeExitHook = onExit(() => this.#destroySync());
  }

  async build(specs: readonly HostSpec[]): Promise<void> {
    const bridge = this.#names.bridge;
    await ip('link', 'add', bridge, 'type', 'bridge');
    // Bridged test traffic skips the host firewall where the kernel allows saying so.
    await tryRun('ip', ['link', 'set', bridge, 'type', 'bridge', 'nf_call_iptables', '0']);
    await ip('addr', 'add', `${this.rootAddress}/24`, 'dev', bridge);
    await ip('link', 'set', bridge, 'up');
    for (const [i, host] of this.hosts.entries()) {
      const peer = this.#names.peerEnd(i + 1);
      await ip('netns', 'add', host.namespace);
      await ip('link', 'add', host.link, 'type', 'veth', 'peer', 'name', peer);
      await ip('link', 'set', peer, 'netns', host.namespace);
      await ip('link', 'set', host.link, 'master', bridge);
      await ip('link', 'set', host.link, 'up');
      await ip('-n', host.namespace, 'link', 'set', peer, 'name', 'eth0');
      await ip('-n', host.namespace, 'addr', 'add', `${host.address}/24`, 'dev', 'eth0');
      await ip('-n', host.namespace, 'link', 'set', 'eth0', 'up');
      await ip('-n', host.namespace, 'link', 'set', 'lo', 'up');
      const shape = specs[i]?.shape;
      if (shape) await this.shape(host.name, shape);
    }
  }

  host(name: string): TestHost {
    const host = this.#byName.get(name);
    if (!host) throw new Error(`no host "${name}" in this network (${[...this.#byName.keys()].join(', ')})`);
    return host;
  }

  async shape(name: string, shape: LinkShape): Promise<void> {
    const host = this.host(name);
    await tc(...tbfArguments(host.link, shape));
    await tc('-n', host.namespace, ...tbfArguments('eth0', shape));
  }

  async unshape(name: string): Promise<void> {
    const host = this.host(name);
    await tryRun('tc', ['qdisc', 'del', 'dev', host.link, 'root']);
    await tryRun('tc', ['-n', host.namespace, 'qdisc', 'del', 'dev', 'eth0', 'root']);
  }

  async linkDown(name: string): Promise<void> {
    await ip('link', 'set', this.host(name).link, 'down');
  }

  async linkUp(name: string): Promise<void> {
    await ip('link', 'set', this.host(name).link, 'up');
  }

  spawn(
    name: string,
    processName: string,
    command: string,
    args: readonly string[],
    env: NodeJS.ProcessEnv = {},
  ): ChildHandle {
    if (this.#destroyed) throw new Error('the test network was destroyed');
    const host = this.host(name);
    return spawnTracked(
      processName,
      'ip',
      ['netns', 'exec', host.namespace, ...parentDeathWrapper(), command, ...args],
      env,
    );
  }

  async destroy(): Promise<void> {
    this.#destroyed = true;
    for (const host of this.hosts) {
      for (const pid of await namespacePids(host.namespace)) killQuietly(pid);
    }
    // Deleting a veth end removes its peer at once; a deleted namespace is torn down later.
    for (const host of this.hosts) await tryRun('ip', ['link', 'del', host.link]);
    await tryRun('ip', ['link', 'del', this.#names.bridge]);
    const namespaces = new Set(await listNamespaces());
    for (const host of this.hosts) {
      if (namespaces.has(host.namespace)) await tryRun('ip', ['netns', 'del', host.namespace]);
    }
    this.#removeExitHook?.();
    this.#removeExitHook = undefined;
    const prefix = this.#names.prefix;
    const left = [...(await listNamespaces()), ...(await listLinks())].filter((n) => n.startsWith(prefix));
    if (left.length > 0) throw new Error(`the test network left ${left.join(', ')} behind`);
  }

  #destroySync(): void {
    this.#destroyed = true;
    for (const host of this.hosts) for (const pid of namespacePidsSync(host.namespace)) killQuietly(pid);
    const links = new Set(listLinksSync());
    for (const host of this.hosts) if (links.has(host.link)) runSyncQuietly('ip', ['link', 'del', host.link]);
    if (links.has(this.#names.bridge)) runSyncQuietly('ip', ['link', 'del', this.#names.bridge]);
    const namespaces = new Set(listNamespacesSync());
    for (const host of this.hosts) {
      if (namespaces.has(host.namespace)) runSyncQuietly('ip', ['netns', 'del', host.namespace]);
    }
  }
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // Already gone.
  }
}
