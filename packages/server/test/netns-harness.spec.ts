/**
 * The network-namespace harness itself: hosts get their own namespaces and addresses on one
 * bridge, a shaped link runs at its rate, a link taken down cuts its host off until it comes
 * back up, and leftovers of a dead run are found by name and removed.
 */
import { spawn, spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, expect, it } from 'vitest';
import { type ChildHandle, killAllChildren, waitFor, withTimeout } from './e2e-helpers.js';
import { canConnect, exchange } from './netns/byte-client.js';
import { ip } from './netns/commands.js';
import { describeNetns } from './netns/describe-netns.js';
import { listLinks, listNamespaces, namespacePids } from './netns/inventory.js';
import { networkNames } from './netns/names.js';
import { createNetwork, type TestNetwork } from './netns/network.js';
import { isAlive, sweepStale } from './netns/stale-sweep.js';

const BYTE_SERVER = path.join(path.dirname(fileURLToPath(import.meta.url)), 'netns/byte-server.mjs');
const PORT = 9100;

let network: TestNetwork | undefined;

afterEach(async () => {
  await killAllChildren();
  await network?.destroy();
  network = undefined;
});

afterAll(async () => {
  await killAllChildren();
});

/** Starts `byte-server.mjs` in `host` and waits until it listens. */
async function byteServer(net: TestNetwork, host: string): Promise<ChildHandle> {
  const server = net.spawn(host, `byte-server@${host}`, process.execPath, [BYTE_SERVER, String(PORT)]);
  await waitFor(
    `the byte server in ${host} to listen`,
    () => server.lines.includes(`listening ${PORT}`) || server.hasExited(),
  );
  expect(server.hasExited(), server.output()).toBe(false);
  return server;
}

/** Every namespace and root-namespace link whose name starts with `prefix`. */
async function objectsNamed(prefix: string): Promise<string[]> {
  return [...(await listNamespaces()), ...(await listLinks())].filter((name) => name.startsWith(prefix));
}

describeNetns('network namespace harness', () => {
  it('gives each host its own namespace and address on one bridge, and removes it all', async () => {
    network = await createNetwork({ hosts: ['alpha', 'beta'] });
    const [alpha, beta] = network.hosts;
    expect(alpha!.address).not.toBe(beta!.address);
    expect(await ip('-n', alpha!.namespace, '-4', '-o', 'addr', 'show', 'dev', 'eth0')).toContain(
      `${alpha!.address}/24`,
    );
    await byteServer(network, 'alpha');
    // The test process reaches a host over the bridge, and so does another host.
    expect((await exchange(alpha!.address, PORT, 1000)).bytesBack).toBe(1000);
    const client = network.spawn('beta', 'client@beta', process.execPath, [
      '--input-type=module',
      '-e',
      `import net from 'node:net';
       const s = net.connect(${PORT}, '${alpha!.address}', () => s.end('hello'));
       let n = 0; s.on('data', (d) => { n += d.length; }); s.on('end', () => console.log('echoed', n, 'from', s.localAddress));`,
    ]);
    await withTimeout(client.exited, 10_000, 'the client in beta');
    expect(client.output()).toContain(`echoed 5 from ${beta!.address}`);

    const prefix = alpha!.namespace.slice(0, alpha!.namespace.length - 'alpha'.length);
    expect((await objectsNamed(prefix)).sort()).toEqual(
      [alpha!.namespace, beta!.namespace, alpha!.link, beta!.link, `${prefix}br`].sort(),
    );
    await network.destroy();
    network = undefined;
    expect(await objectsNamed(prefix)).toEqual([]);
  });

  it('shapes a link in both directions: a 10 Mbit/s link is about ten times slower than a 100 Mbit/s one', async () => {
    network = await createNetwork({
      hosts: [
        { name: 'fast', shape: { rateMbit: 100 } },
        { name: 'slow', shape: { rateMbit: 10 } },
      ],
    });
    await byteServer(network, 'fast');
    await byteServer(network, 'slow');
    const mbitPerS = (bytes: number, ms: number) => (bytes * 8) / 1e6 / (ms / 1000);
    const fastBytes = 2_000_000;
    const slowBytes = 500_000;
    const fast = await exchange(network.host('fast').address, PORT, fastBytes);
    const slow = await exchange(network.host('slow').address, PORT, slowBytes);
    const rates = {
      fastUp: mbitPerS(fastBytes, fast.uploadMs),
      fastDown: mbitPerS(fastBytes, fast.downloadMs),
      slowUp: mbitPerS(slowBytes, slow.uploadMs),
      slowDown: mbitPerS(slowBytes, slow.downloadMs),
    };
    console.info(
      `shaped links (Mbit/s): ${JSON.stringify(rates, (_k, v) => (typeof v === 'number' ? Number(v.toFixed(1)) : v))}`,
    );
    // The shaper is a hard ceiling (10% for the bucket and rounding) ...
    expect(rates.fastUp).toBeLessThan(110);
    expect(rates.fastDown).toBeLessThan(110);
    expect(rates.slowUp).toBeLessThan(11);
    expect(rates.slowDown).toBeLessThan(11);
    // ... and a 10 Mbit/s link on an idle bridge does reach most of its rate.
    expect(rates.slowUp).toBeGreaterThan(5);
    expect(rates.slowDown).toBeGreaterThan(5);
    expect(rates.fastUp).toBeGreaterThan(3 * rates.slowUp);
    expect(rates.fastDown).toBeGreaterThan(3 * rates.slowDown);
  });

  it('cuts a host off while its link is down and reconnects it once it is up', async () => {
    network = await createNetwork({ hosts: ['alpha'] });
    const alpha = network.host('alpha');
    await byteServer(network, 'alpha');
    expect(await canConnect(alpha.address, PORT, 2000)).toBe(true);
    await network.linkDown('alpha');
    expect(await canConnect(alpha.address, PORT, 1000)).toBe(false);
    await network.linkUp('alpha');
    await waitFor('alpha to be reachable again', () => canConnect(alpha.address, PORT, 1000), 10_000);
    expect((await exchange(alpha.address, PORT, 100)).bytesBack).toBe(100);
  });

  it('removes the namespaces and links of a dead run, and the processes left in them, but not those of a live run', async () => {
    // A process id that is certainly not running any more.
    const dead = spawnSync(process.execPath, ['-e', '']).pid;
    expect(isAlive(dead)).toBe(false);
    const stale = networkNames(dead, 0);
    const namespace = stale.namespace('ghost');
    await ip('netns', 'add', namespace);
    await ip('link', 'add', stale.bridge, 'type', 'bridge');
    await ip('link', 'add', stale.hostEnd(1), 'type', 'veth', 'peer', 'name', stale.peerEnd(1));
    await ip('link', 'set', stale.peerEnd(1), 'netns', namespace);
    // A process a crashed run left running in its namespace (not a child of any test).
    const orphan = spawn(
      'ip',
      ['netns', 'exec', namespace, process.execPath, '-e', 'setTimeout(() => {}, 60_000)'],
      { detached: true, stdio: 'ignore' },
    );
    orphan.unref();
    await waitFor(
      'the orphan to run in the stale namespace',
      async () => (await namespacePids(namespace)).length > 0,
      10_000,
    );

    network = await createNetwork({ hosts: ['alive'] });
    // createNetwork swept already; a second sweep finds nothing more and leaves the live network alone.
    const again = await sweepStale();
    expect(again.namespaces).toEqual([]);
    expect(await objectsNamed(stale.prefix)).toEqual([]);
    await waitFor(
      'the orphan to be killed',
      () => orphan.exitCode !== null || orphan.signalCode !== null,
      10_000,
    );
    expect(orphan.signalCode).toBe('SIGKILL');
    const alive = network.host('alive');
    expect(await listNamespaces()).toContain(alive.namespace);
    expect(await listLinks()).toContain(alive.link);
  });
});
