import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DinferErrorCode, isDinferError } from '../src/errors.js';
import { createBlobStore } from '../src/node/disk-blob-store.js';
import { memoryBlobStore } from '../src/ship/memory-blob-store.js';
import { blobStoreSuite } from '../src/testing/blob-store-suite.js';
import { patternBytes, rejection } from '../src/testing/suite-helpers.js';

const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'dinfer-blobs-'));
  dirs.push(dir);
  return dir;
}
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

const sha = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

describe('createBlobStore passes the blob store compliance suite', () => {
  blobStoreSuite(it, async ({ maxBytes }) => createBlobStore({ dir: await tempDir(), maxBytes }));
});

describe('memoryBlobStore passes the blob store compliance suite', () => {
  blobStoreSuite(it, ({ maxBytes }) => memoryBlobStore({ maxBytes }));
});

describe('createBlobStore', () => {
  it('resumes a partial blob after a restart and keeps complete blobs', async () => {
    const dir = await tempDir();
    const kept = patternBytes(3000, 4);
    const data = patternBytes(8000, 5);
    const id = sha(data);
    const first = createBlobStore({ dir });
    const keptId = await first.put(kept);
    await first.append(id, 0, data.subarray(0, 3000), data.byteLength);
    await first.close(); // the worker stops

    const second = createBlobStore({ dir });
    expect(second.list()).toEqual([keptId]);
    expect(second.receivedBytes(id)).toBe(3000);
    await second.append(id, 3000, data.subarray(3000), data.byteLength);
    await second.complete(id);

    const third = createBlobStore({ dir });
    expect(third.list().sort()).toEqual([keptId, id].sort());
    expect(third.totalBytes()).toBe(11_000);
    expect(Buffer.from(await third.read(id)).equals(Buffer.from(data))).toBe(true);
  });

  it('discards tampered data with HASH_MISMATCH and never lists it', async () => {
    const dir = await tempDir();
    const store = createBlobStore({ dir });
    const data = patternBytes(2048, 6);
    const id = sha(data);
    const tampered = data.slice();
    tampered[1000] = (tampered[1000]! + 1) & 0xff;
    await store.append(id, 0, tampered, tampered.byteLength);
    const error = await rejection(store.complete(id));
    expect(isDinferError(error, DinferErrorCode.HASH_MISMATCH)).toBe(true);
    expect(store.has(id)).toBe(false);
    expect(store.list()).toEqual([]);
    expect(store.receivedBytes(id)).toBe(0);
    expect((await readdir(join(dir, 'partial'))).filter((name) => name.startsWith(id))).toEqual([]);
    expect(isDinferError(await rejection(store.read(id)), DinferErrorCode.MODEL_NOT_FOUND)).toBe(true);
    expect(createBlobStore({ dir }).list()).toEqual([]);
  });

  it('rebuilds recency from modification times after a restart', async () => {
    const dir = await tempDir();
    const store = createBlobStore({ dir, maxBytes: 2000 });
    const ida = await store.put(patternBytes(1000, 1));
    const idb = await store.put(patternBytes(1000, 2));
    await utimes(join(dir, 'blobs', ida), new Date(2_000_000_000_000), new Date(2_000_000_000_000));
    await utimes(join(dir, 'blobs', idb), new Date(1_000_000_000_000), new Date(1_000_000_000_000));
    const restarted = createBlobStore({ dir, maxBytes: 2000 });
    expect(restarted.list()).toEqual([idb, ida]);
    await restarted.put(patternBytes(1000, 3));
    expect(restarted.has(idb)).toBe(false);
    expect(restarted.has(ida)).toBe(true);
  });

  it('ignores foreign files and refuses bad ids and oversized blobs', async () => {
    const dir = await tempDir();
    const store = createBlobStore({ dir, maxBytes: 100 });
    await writeFile(join(dir, 'blobs', 'not-a-hash'), 'x');
    expect(createBlobStore({ dir }).list()).toEqual([]);
    expect(store.has('x')).toBe(false);
    expect(() => store.pin('../etc')).toThrow(/SHA-256/);
    expect(
      isDinferError(await rejection(store.put(patternBytes(101, 1))), DinferErrorCode.INVALID_ARGUMENT),
    ).toBe(true);
    expect(() => createBlobStore({ dir, maxBytes: 0 })).toThrow(/maxBytes/);
  });

  it('resumes a partial blob left by a process that died', async () => {
    const dir = await tempDir();
    const data = patternBytes(6000, 11);
    const id = sha(data);
    createBlobStore({ dir }); // lays out the directory
    const dead = spawnSync(process.execPath, ['-e', '0']).pid;
    await writeFile(join(dir, 'partial', `${id}.${dead}.abcdef`), data.subarray(0, 2500));
    const store = createBlobStore({ dir });
    expect(store.receivedBytes(id)).toBe(2500);
    expect(store.partialBytes()).toBe(2500);
    await store.append(id, 2500, data.subarray(2500), data.byteLength);
    await store.complete(id);
    expect(Buffer.from(await store.read(id)).equals(Buffer.from(data))).toBe(true);
    expect(await readdir(join(dir, 'partial'))).toEqual([]);
  });

  it('lets two live stores share one directory: each receives the same blob on its own and both complete', async () => {
    const dir = await tempDir();
    const a = createBlobStore({ dir });
    const b = createBlobStore({ dir });
    const data = patternBytes(20_000, 12);
    const id = sha(data);
    // Interleaved chunks, as two workers of `dinfer up` receive one stage at once.
    for (let offset = 0; offset < data.byteLength; offset += 4000) {
      const chunk = data.subarray(offset, offset + 4000);
      await Promise.all([
        a.append(id, offset, chunk, data.byteLength),
        b.append(id, offset, chunk, data.byteLength),
      ]);
    }
    expect(a.receivedBytes(id)).toBe(20_000);
    expect(b.receivedBytes(id)).toBe(20_000);
    await Promise.all([a.complete(id), b.complete(id)]);
    for (const store of [a, b, createBlobStore({ dir })]) {
      expect(store.has(id)).toBe(true);
      expect(Buffer.from(await store.read(id)).equals(Buffer.from(data))).toBe(true);
    }
    expect(await readdir(join(dir, 'partial'))).toEqual([]);
  });

  it('sees a blob another live store completed, and does not take its partial blobs', async () => {
    const dir = await tempDir();
    const early = createBlobStore({ dir });
    const writer = createBlobStore({ dir });
    const data = patternBytes(3000, 13);
    const id = await writer.put(data);
    const pending = patternBytes(3000, 14);
    await writer.append(sha(pending), 0, pending.subarray(0, 1000), pending.byteLength);
    expect(early.has(id)).toBe(true);
    expect(Buffer.from(await early.read(id)).equals(Buffer.from(data))).toBe(true);
    // The writer is alive: a store opening now leaves its partial blob alone.
    expect(createBlobStore({ dir }).receivedBytes(sha(pending))).toBe(0);
    expect(writer.receivedBytes(sha(pending))).toBe(1000);
  });

  it('drops a partial blob longer than the blob it is for and asks to start again at 0', async () => {
    const dir = await tempDir();
    const data = patternBytes(5000, 15);
    const id = sha(data);
    createBlobStore({ dir });
    const dead = spawnSync(process.execPath, ['-e', '0']).pid;
    await writeFile(join(dir, 'partial', `${id}.${dead}.0123ab`), patternBytes(12_000, 16));
    const store = createBlobStore({ dir });
    expect(store.receivedBytes(id)).toBe(12_000);
    const error = await rejection(store.append(id, 12_000, data.subarray(0, 10), data.byteLength));
    expect(error).toMatchObject({ code: DinferErrorCode.PROTOCOL, details: { expectedOffset: 0 } });
    expect(store.receivedBytes(id)).toBe(0);
    expect(store.partialBytes()).toBe(0);
    await store.append(id, 0, data, data.byteLength);
    await store.complete(id);
    expect(store.has(id)).toBe(true);
  });

  it('deletes orphaned partial blobs older than the stale age, and scratch files of gone stores only', async () => {
    const dir = await tempDir();
    const live = createBlobStore({ dir });
    const dead = spawnSync(process.execPath, ['-e', '0']).pid;
    const data = patternBytes(3000, 20);
    const stalePath = join(dir, 'partial', `${sha(data)}.${dead}.00aa11`);
    await writeFile(stalePath, data.subarray(0, 100));
    const hourAgo = new Date(Date.now() - 3_600_000);
    await utimes(stalePath, hourAgo, hourAgo);
    await writeFile(join(dir, 'tmp', `${dead}.ffee00`), 'leftover');
    const liveScratch = (await readdir(join(dir, 'tmp'))).filter((n) => n.startsWith(`${process.pid}.`));
    const store = createBlobStore({ dir, stalePartialMs: 60_000 });
    expect(store.receivedBytes(sha(data))).toBe(0);
    expect(existsSync(stalePath)).toBe(false);
    const left = await readdir(join(dir, 'tmp'));
    expect(left).not.toContain(`${dead}.ffee00`);
    for (const name of liveScratch) expect(left).toContain(name);
    await live.close();
    await store.close();
  });
});
