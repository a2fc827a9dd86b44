import { describe, expect, it } from 'vitest';
import { platform as nodePlatform } from '../src/platform/node.js';
import type { Platform } from '../src/platform/platform.js';
import { platform as webPlatform } from '../src/platform/web.js';

const text = (s: string) => new TextEncoder().encode(s);

describe.each([
  ['node', nodePlatform],
  ['web', webPlatform],
] as const)('the %s platform', (_name, platform: Platform) => {
  it('deflates and inflates raw DEFLATE, compatibly with the other platform', () => {
    const data = new Uint8Array(100_000).map((_, i) => (i * 7) % 13);
    const other = platform === nodePlatform ? webPlatform : nodePlatform;
    const packed = platform.deflateRaw(data, 6);
    expect(packed.byteLength).toBeLessThan(data.byteLength / 10);
    expect(platform.inflateRaw(packed, data.byteLength)).toEqual(data);
    expect(other.inflateRaw(packed, data.byteLength)).toEqual(data);
    expect(platform.inflateRaw(other.deflateRaw(data, 1), data.byteLength)).toEqual(data);
  });

  it('refuses to inflate past the limit (a deflate bomb) and refuses corrupt data', () => {
    const bomb = platform.deflateRaw(new Uint8Array(1_000_000), 9);
    expect(bomb.byteLength).toBeLessThan(2_000);
    expect(() => platform.inflateRaw(bomb, 999_999)).toThrow();
    expect(platform.inflateRaw(bomb, 1_000_000).byteLength).toBe(1_000_000);
    expect(() => platform.inflateRaw(Uint8Array.of(0xff, 0xff, 0xff, 0xff), 100)).toThrow();
  });

  it('hashes SHA-256 over concatenated parts', () => {
    // FIPS 180-2 test vector.
    const abc = 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad';
    expect(platform.sha256Hex([text('abc')])).toBe(abc);
    expect(platform.sha256Hex([text('a'), text(''), text('bc')])).toBe(abc);
    expect(platform.sha256Hex([])).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  });

  it('describes the machine: cores, a host name, and memory where the runtime says', () => {
    const machine = platform.machine();
    expect(machine.cores).toBeGreaterThanOrEqual(1);
    expect(machine.hostname.length).toBeGreaterThan(0);
    if (machine.memoryBytes !== undefined) expect(machine.memoryBytes).toBeGreaterThan(0);
  });

  it('yields to the event loop: a timer set before runs first', async () => {
    const order: string[] = [];
    setTimeout(() => order.push('timer'), 0);
    await new Promise((resolve) => setTimeout(resolve, 2));
    const yielded = platform.yieldToEventLoop().then(() => order.push('yield'));
    queueMicrotask(() => order.push('microtask'));
    await yielded;
    expect(order).toEqual(['timer', 'microtask', 'yield']);
  });
});

describe('the platforms beyond the web globals', () => {
  it('node: tells CPU time (growing as it computes) and memory in use', () => {
    const before = nodePlatform.cpuTimeMs()!;
    let x = 0;
    for (let i = 0; i < 5e6; i++) x += Math.sqrt(i);
    expect(x).toBeGreaterThan(0);
    expect(nodePlatform.cpuTimeMs()!).toBeGreaterThan(before);
    expect(nodePlatform.memoryInUseBytes()!).toBeGreaterThan(10 * 1024 * 1024);
  });

  it('web: has no CPU clock and no file system', () => {
    expect(webPlatform.cpuTimeMs()).toBeUndefined();
    expect(webPlatform.files).toBeUndefined();
  });

  it('node: reads ranges, short only at the end of a file, and writes atomically', async () => {
    const files = nodePlatform.files!;
    const { mkdtemp, readdir, rm } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const dir = await mkdtemp(files.join(tmpdir(), 'dinfer-files-'));
    try {
      const path = files.join(dir, 'sub', 'a.bin');
      await files.makeDirectory(files.dirname(path));
      await files.writeAtomically(
        path,
        Uint8Array.from({ length: 100 }, (_, i) => i),
      );
      expect(await readdir(files.join(dir, 'sub'))).toEqual(['a.bin']); // no temporary left
      const target = new Uint8Array(10);
      expect(await files.readInto(path, 20, target)).toBe(10);
      expect([...target]).toEqual([20, 21, 22, 23, 24, 25, 26, 27, 28, 29]);
      expect(await files.readInto(path, 95, new Uint8Array(10))).toBe(5);
      expect(await files.stat(path)).toEqual({ size: 100, directory: false });
      expect((await files.stat(dir)).directory).toBe(true);
      expect(files.resolve(`file://${path}`)).toBe(path);
      await expect(files.readText(files.join(dir, 'missing'))).rejects.toMatchObject({ code: 'ENOENT' });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
