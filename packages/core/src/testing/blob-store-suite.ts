/**
 * The blob store compliance suite, runner-agnostic: what every {@link BlobStore} (disk, memory,
 * or one of your own, e.g. over IndexedDB) must do.
 *
 * @module
 */
import assert from 'node:assert/strict';
import { platform } from '#platform';
import { DinferErrorCode, isDinferError } from '../errors.js';
import type { BlobStore } from '../ship/blob-store.js';
import type { SuiteTest } from './scheduler-suite.js';
import { patternBytes, rejection } from './suite-helpers.js';

/** Makes a fresh, empty store bounded by `maxBytes` (the store's default when absent). */
export type BlobStoreFactory = (options: {
  readonly maxBytes?: number | undefined;
}) => BlobStore | Promise<BlobStore>;

const sha = (bytes: Uint8Array): string => platform.sha256Hex([bytes]);

function sameBytes(actual: Uint8Array, expected: Uint8Array): void {
  assert.equal(actual.byteLength, expected.byteLength);
  assert.ok(
    actual.every((b, i) => b === expected[i]),
    'bytes differ',
  );
}

/** Registers the blob store compliance tests through `test` (vitest's `it`, node:test's `test`...). */
export function blobStoreSuite(test: SuiteTest, factory: BlobStoreFactory): void {
  test('stores, lists and reads blobs by their SHA-256', async () => {
    const store = await factory({});
    const data = patternBytes(5000, 1);
    const id = await store.put(data);
    assert.equal(id, sha(data));
    assert.equal(store.has(id), true);
    assert.deepEqual(store.list(), [id]);
    assert.equal(store.totalBytes(), 5000);
    sameBytes(await store.read(id), data);
    // Putting the same bytes again stores nothing new.
    assert.equal(await store.put(data), id);
    assert.equal(store.totalBytes(), 5000);
  });

  test('assembles a blob from chunks and verifies it on complete', async () => {
    const store = await factory({});
    const data = patternBytes(10_000, 2);
    const id = sha(data);
    assert.equal(await store.append(id, 0, data.subarray(0, 4000), data.byteLength), 4000);
    assert.equal(store.receivedBytes(id), 4000);
    assert.equal(store.partialBytes(), 4000);
    assert.equal(store.has(id), false);
    assert.deepEqual(store.list(), []);
    assert.equal(await store.append(id, 4000, data.subarray(4000), data.byteLength), 10_000);
    await store.complete(id);
    assert.equal(store.has(id), true);
    assert.equal(store.receivedBytes(id), 0);
    assert.equal(store.partialBytes(), 0);
    sameBytes(await store.read(id), data);
  });

  test('refuses a chunk that does not start at the resume point, naming the expected offset', async () => {
    const store = await factory({});
    const data = patternBytes(100, 3);
    const id = sha(data);
    await store.append(id, 0, data.subarray(0, 40), 100);
    const error = await rejection(store.append(id, 60, data.subarray(60), 100));
    assert.ok(isDinferError(error, DinferErrorCode.PROTOCOL));
    assert.equal(error.details.expectedOffset, 40);
    // A chunk past totalBytes and a changed totalBytes are refused too.
    assert.ok(
      isDinferError(
        await rejection(store.append(id, 40, patternBytes(70, 1), 100)),
        DinferErrorCode.PROTOCOL,
      ),
    );
    assert.ok(
      isDinferError(await rejection(store.append(id, 40, data.subarray(40), 120)), DinferErrorCode.PROTOCOL),
    );
    assert.equal(store.receivedBytes(id), 40);
  });

  test('discards tampered data with HASH_MISMATCH and never lists it', async () => {
    const store = await factory({});
    const data = patternBytes(2048, 6);
    const id = sha(data);
    const tampered = data.slice();
    tampered[1000] = (tampered[1000]! + 1) & 0xff;
    await store.append(id, 0, tampered, tampered.byteLength);
    assert.ok(isDinferError(await rejection(store.complete(id)), DinferErrorCode.HASH_MISMATCH));
    assert.equal(store.has(id), false);
    assert.deepEqual(store.list(), []);
    assert.equal(store.receivedBytes(id), 0);
    assert.equal(store.partialBytes(), 0);
    assert.ok(isDinferError(await rejection(store.read(id)), DinferErrorCode.MODEL_NOT_FOUND));
  });

  test('refuses to complete a blob that is not fully received', async () => {
    const store = await factory({});
    const data = patternBytes(500, 7);
    const id = sha(data);
    await store.append(id, 0, data.subarray(0, 200), 500);
    assert.ok(isDinferError(await rejection(store.complete(id)), DinferErrorCode.PROTOCOL));
    assert.equal(store.receivedBytes(id), 200);
  });

  test('evicts the least recently used unpinned blobs beyond maxBytes', async () => {
    const store = await factory({ maxBytes: 3000 });
    const [a, b, c, d, e] = [1, 2, 3, 4, 5].map((seed) => patternBytes(1000, seed));
    const ida = await store.put(a!);
    const idb = await store.put(b!);
    const idc = await store.put(c!);
    await store.read(ida); // a becomes the most recently used
    const idd = await store.put(d!); // evicts b, the least recently used
    assert.equal(store.has(idb), false);
    assert.deepEqual(store.list(), [idc, ida, idd]);
    assert.equal(store.totalBytes(), 3000);

    store.pin(idc);
    const ide = await store.put(e!); // c is pinned, so a (next in line) goes
    assert.deepEqual(store.list(), [idc, idd, ide]);
    store.unpin(idc);
    const idb2 = await store.put(b!); // now c goes
    assert.deepEqual(store.list(), [idd, ide, idb2]);
  });

  test('counts partial blobs against the bound and refuses what only pinned blobs could make room for', async () => {
    const store = await factory({ maxBytes: 9000 });
    const old = await store.put(patternBytes(4000, 17));
    const pinned = await store.put(patternBytes(4000, 18));
    store.pin(pinned);
    const big = patternBytes(6000, 19);
    await store.append(sha(big), 0, big.subarray(0, 2000), big.byteLength);
    assert.equal(store.has(old), false, 'an unpinned blob is evicted to make room for a partial one');
    assert.equal(store.has(pinned), true);
    await store.append(sha(big), 2000, big.subarray(2000, 4000), big.byteLength);
    assert.equal(store.totalBytes() + store.partialBytes(), 8000);
    const error = await rejection(store.append(sha(big), 4000, big.subarray(4000), big.byteLength));
    assert.ok(isDinferError(error, DinferErrorCode.CACHE_FULL));
    assert.ok(store.totalBytes() + store.partialBytes() <= 9000);
    store.unpin(pinned);
    await store.append(sha(big), 4000, big.subarray(4000), big.byteLength);
    await store.complete(sha(big));
    assert.deepEqual(store.list(), [sha(big)]);
  });

  test('refuses bad ids and oversized blobs', async () => {
    const store = await factory({ maxBytes: 100 });
    assert.equal(store.has('x'), false);
    assert.throws(() => store.pin('../etc'), /SHA-256/);
    assert.ok(
      isDinferError(await rejection(store.put(patternBytes(101, 1))), DinferErrorCode.INVALID_ARGUMENT),
    );
    const big = patternBytes(200, 2);
    assert.ok(
      isDinferError(
        await rejection(store.append(sha(big), 0, big.subarray(0, 10), 200)),
        DinferErrorCode.INVALID_ARGUMENT,
      ),
    );
    await assert.rejects(async () => store.append('../../etc/passwd', 0, big, 200), /SHA-256/);
  });

  test('deletes complete and partial blobs, and refuses writes once closed', async () => {
    const store = await factory({});
    const data = patternBytes(300, 9);
    const id = await store.put(data);
    const partial = patternBytes(300, 10);
    await store.append(sha(partial), 0, partial.subarray(0, 100), 300);
    await store.delete(id);
    await store.delete(sha(partial));
    assert.equal(store.has(id), false);
    assert.equal(store.receivedBytes(sha(partial)), 0);
    assert.equal(store.totalBytes() + store.partialBytes(), 0);
    await store.close();
    await store.close();
    await assert.rejects(() => store.put(data));
  });
}
