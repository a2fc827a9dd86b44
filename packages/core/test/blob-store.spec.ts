import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DinferErrorCode, isDinferError } from '../src/errors.js';
import { createBlobStore } from '../src/node/disk-blob-store.js';

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

/** `n` bytes of a deterministic pattern that depends on `seed`. */
function bytesOf(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 31 + seed * 17 + ((i * seed) >> 3)) & 0xff;
  return out;
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected a rejection');
}

describe('createBlobStore', () => {
  it('stores, lists and reads blobs by their SHA-256', async () => {
    const store = createBlobStore({ dir: await tempDir() });
    const data = bytesOf(5000, 1);
    const id = await store.put(data);
    expect(id).toBe(sha(data));
    expect(store.has(id)).toBe(true);
    expect(store.list()).toEqual([id]);
    expect(store.totalBytes()).toBe(5000);
    expect(Buffer.from(await store.read(id)).equals(Buffer.from(data))).toBe(true);
    // Putting the same bytes again stores nothing new.
    expect(await store.put(data)).toBe(id);
    expect(store.totalBytes()).toBe(5000);
  });

  it('assembles a blob from chunks and verifies it on complete', async () => {
    const store = createBlobStore({ dir: await tempDir() });
    const data = bytesOf(10_000, 2);
    const id = sha(data);
    expect(await store.append(id, 0, data.subarray(0, 4000), data.byteLength)).toBe(4000);
    expect(store.receivedBytes(id)).toBe(4000);
    expect(store.has(id)).toBe(false);
    expect(store.list()).toEqual([]);
    expect(await store.append(id, 4000, data.subarray(4000), data.byteLength)).toBe(10_000);
    await store.complete(id);
    expect(store.has(id)).toBe(true);
    expect(store.receivedBytes(id)).toBe(0);
    expect(Buffer.from(await store.read(id)).equals(Buffer.from(data))).toBe(true);
  });

  it('refuses a chunk that does not start at the resume point, naming the expected offset', async () => {
    const store = createBlobStore({ dir: await tempDir() });
    const data = bytesOf(100, 3);
    const id = sha(data);
    await store.append(id, 0, data.subarray(0, 40), 100);
    const error = await rejection(store.append(id, 60, data.subarray(60), 100));
    expect(isDinferError(error, DinferErrorCode.PROTOCOL)).toBe(true);
    expect((error as { details: Record<string, unknown> }).details.expectedOffset).toBe(40);
    // A chunk past totalBytes and a changed totalBytes are refused too.
    expect(
      isDinferError(await rejection(store.append(id, 40, bytesOf(70, 1), 100)), DinferErrorCode.PROTOCOL),
    ).toBe(true);
    expect(
      isDinferError(await rejection(store.append(id, 40, data.subarray(40), 120)), DinferErrorCode.PROTOCOL),
    ).toBe(true);
    expect(store.receivedBytes(id)).toBe(40);
  });

  it('resumes a partial blob after a restart and keeps complete blobs', async () => {
    const dir = await tempDir();
    const kept = bytesOf(3000, 4);
    const data = bytesOf(8000, 5);
    const id = sha(data);
    const first = createBlobStore({ dir });
    const keptId = await first.put(kept);
    await first.append(id, 0, data.subarray(0, 3000), data.byteLength);

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
    const data = bytesOf(2048, 6);
    const id = sha(data);
    const tampered = data.slice();
    tampered[1000] = (tampered[1000]! + 1) & 0xff;
    await store.append(id, 0, tampered, tampered.byteLength);
    const error = await rejection(store.complete(id));
    expect(isDinferError(error, DinferErrorCode.HASH_MISMATCH)).toBe(true);
    expect(store.has(id)).toBe(false);
    expect(store.list()).toEqual([]);
    expect(store.receivedBytes(id)).toBe(0);
    expect(existsSync(join(dir, 'partial', id))).toBe(false);
    expect(isDinferError(await rejection(store.read(id)), DinferErrorCode.MODEL_NOT_FOUND)).toBe(true);
    expect(createBlobStore({ dir }).list()).toEqual([]);
  });

  it('refuses to complete a blob that is not fully received', async () => {
    const store = createBlobStore({ dir: await tempDir() });
    const data = bytesOf(500, 7);
    const id = sha(data);
    await store.append(id, 0, data.subarray(0, 200), 500);
    expect(isDinferError(await rejection(store.complete(id)), DinferErrorCode.PROTOCOL)).toBe(true);
    expect(store.receivedBytes(id)).toBe(200);
  });

  it('evicts the least recently used unpinned blobs beyond maxBytes', async () => {
    const store = createBlobStore({ dir: await tempDir(), maxBytes: 3000 });
    const [a, b, c, d, e] = await Promise.all([1, 2, 3, 4, 5].map(async (seed) => bytesOf(1000, seed)));
    const ida = await store.put(a!);
    const idb = await store.put(b!);
    const idc = await store.put(c!);
    await store.read(ida); // a becomes the most recently used
    const idd = await store.put(d!); // evicts b, the least recently used
    expect(store.has(idb)).toBe(false);
    expect(store.list()).toEqual([idc, ida, idd]);
    expect(store.totalBytes()).toBe(3000);

    store.pin(idc);
    const ide = await store.put(e!); // c is pinned, so a (next in line) goes
    expect(store.list()).toEqual([idc, idd, ide]);
    store.unpin(idc);
    const idb2 = await store.put(b!); // now c goes
    expect(store.list()).toEqual([idd, ide, idb2]);
  });

  it('rebuilds recency from modification times after a restart', async () => {
    const dir = await tempDir();
    const store = createBlobStore({ dir, maxBytes: 2000 });
    const ida = await store.put(bytesOf(1000, 1));
    const idb = await store.put(bytesOf(1000, 2));
    await utimes(join(dir, 'blobs', ida), new Date(2_000_000_000_000), new Date(2_000_000_000_000));
    await utimes(join(dir, 'blobs', idb), new Date(1_000_000_000_000), new Date(1_000_000_000_000));
    const restarted = createBlobStore({ dir, maxBytes: 2000 });
    expect(restarted.list()).toEqual([idb, ida]);
    await restarted.put(bytesOf(1000, 3));
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
    expect(isDinferError(await rejection(store.put(bytesOf(101, 1))), DinferErrorCode.INVALID_ARGUMENT)).toBe(
      true,
    );
    expect(() => createBlobStore({ dir, maxBytes: 0 })).toThrow(/maxBytes/);
  });
});
