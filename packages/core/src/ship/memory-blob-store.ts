/**
 * A {@link BlobStore} in memory: for workers without a file system (a browser tab keeps its
 * shards in a cache of its own on top of this) and for tests. Same contract as the disk store:
 * resumable chunked writes verified by SHA-256, pins, and least-recently-used eviction within
 * a bound that counts partial blobs too.
 *
 * @module
 */
import { platform } from '#platform';
import { DinferError, DinferErrorCode } from '../errors.js';
import {
  type BlobStore,
  cacheFullError,
  checkAppend,
  checkBlobId,
  checkBlobSize,
  checkChunkPosition,
  PinCounts,
} from './blob-store.js';

/** Options of {@link memoryBlobStore}. */
export interface MemoryBlobStoreOptions {
  /** Bound on the bytes of complete and partial blobs. Default 1 GiB. */
  readonly maxBytes?: number | undefined;
}

interface Partial {
  readonly chunks: Uint8Array[];
  size: number;
  total: number;
}

class MemoryBlobStore implements BlobStore {
  readonly maxBytes: number;
  /** Complete blobs in recency order: a `Map` iterates in insertion order, so re-inserting marks use. */
  readonly #blobs = new Map<string, Uint8Array>();
  readonly #partials = new Map<string, Partial>();
  readonly #pins = new PinCounts();
  #total = 0;
  #partialTotal = 0;
  #closed = false;

  constructor(options: MemoryBlobStoreOptions) {
    const maxBytes = options.maxBytes ?? 1024 ** 3;
    if (!Number.isSafeInteger(maxBytes) || maxBytes <= 0) {
      throw new DinferError(
        DinferErrorCode.INVALID_ARGUMENT,
        'blob store maxBytes must be a positive integer',
        {
          details: { maxBytes },
        },
      );
    }
    this.maxBytes = maxBytes;
  }

  list(): string[] {
    return [...this.#blobs.keys()];
  }

  has(sha256: string): boolean {
    return this.#blobs.has(sha256);
  }

  receivedBytes(sha256: string): number {
    return this.#partials.get(sha256)?.size ?? 0;
  }

  totalBytes(): number {
    return this.#total;
  }

  partialBytes(): number {
    return this.#partialTotal;
  }

  async append(sha256: string, offset: number, bytes: Uint8Array, totalBytes: number): Promise<number> {
    this.#open();
    checkAppend(sha256, offset, bytes, totalBytes, this.maxBytes);
    if (this.#blobs.has(sha256)) {
      throw new DinferError(DinferErrorCode.PROTOCOL, `blob ${sha256} is already complete`, {
        details: { sha256, complete: true },
      });
    }
    const partial = this.#partials.get(sha256) ?? { chunks: [], size: 0, total: totalBytes };
    checkChunkPosition(sha256, offset, bytes.byteLength, totalBytes, partial);
    this.#makeRoom(bytes.byteLength, sha256);
    partial.chunks.push(bytes.slice());
    partial.size += bytes.byteLength;
    this.#partialTotal += bytes.byteLength;
    this.#partials.set(sha256, partial);
    return partial.size;
  }

  async complete(sha256: string): Promise<void> {
    this.#open();
    checkBlobId(sha256);
    if (this.#blobs.has(sha256)) return;
    const partial = this.#partials.get(sha256);
    if (partial === undefined) {
      throw new DinferError(DinferErrorCode.PROTOCOL, `blob ${sha256}: nothing received to complete`, {
        details: { sha256 },
      });
    }
    if (partial.size !== partial.total) {
      throw new DinferError(
        DinferErrorCode.PROTOCOL,
        `blob ${sha256}: ${partial.size} of ${partial.total} bytes received, cannot complete yet`,
        { details: { sha256, receivedBytes: partial.size, totalBytes: partial.total } },
      );
    }
    const actual = platform.sha256Hex(partial.chunks);
    this.#dropPartial(sha256);
    if (actual !== sha256) {
      throw new DinferError(
        DinferErrorCode.HASH_MISMATCH,
        `blob ${sha256}: received bytes hash to ${actual}; discarded`,
        {
          details: { sha256, actualSha256: actual, bytes: partial.size },
        },
      );
    }
    const bytes = new Uint8Array(partial.size);
    let at = 0;
    for (const chunk of partial.chunks) {
      bytes.set(chunk, at);
      at += chunk.byteLength;
    }
    this.#insert(sha256, bytes);
  }

  async read(sha256: string): Promise<Uint8Array> {
    checkBlobId(sha256);
    const bytes = this.#blobs.get(sha256);
    if (bytes === undefined) {
      throw new DinferError(DinferErrorCode.MODEL_NOT_FOUND, `blob ${sha256} is not in the cache`, {
        details: { sha256 },
      });
    }
    this.#touch(sha256, bytes);
    return bytes;
  }

  async put(bytes: Uint8Array): Promise<string> {
    this.#open();
    if (!(bytes instanceof Uint8Array)) {
      throw new DinferError(DinferErrorCode.INVALID_ARGUMENT, 'blob must be a Uint8Array');
    }
    const sha256 = platform.sha256Hex([bytes]);
    checkBlobSize(sha256, bytes.byteLength, this.maxBytes);
    const existing = this.#blobs.get(sha256);
    if (existing !== undefined) {
      this.#touch(sha256, existing);
      return sha256;
    }
    this.#dropPartial(sha256);
    this.#makeRoom(bytes.byteLength, sha256);
    this.#insert(sha256, bytes.slice());
    return sha256;
  }

  pin(sha256: string): void {
    this.#pins.pin(sha256);
  }

  unpin(sha256: string): void {
    this.#pins.unpin(sha256);
  }

  async delete(sha256: string): Promise<void> {
    checkBlobId(sha256);
    this.#forget(sha256);
    this.#dropPartial(sha256);
  }

  async close(): Promise<void> {
    this.#closed = true;
  }

  #open(): void {
    if (this.#closed) throw new DinferError(DinferErrorCode.NOT_READY, 'the memory blob store is closed');
  }

  #touch(sha256: string, bytes: Uint8Array): void {
    this.#blobs.delete(sha256);
    this.#blobs.set(sha256, bytes);
  }

  #forget(sha256: string): void {
    const bytes = this.#blobs.get(sha256);
    if (bytes === undefined) return;
    this.#blobs.delete(sha256);
    this.#total -= bytes.byteLength;
  }

  #dropPartial(sha256: string): void {
    const partial = this.#partials.get(sha256);
    if (partial === undefined) return;
    this.#partials.delete(sha256);
    this.#partialTotal -= partial.size;
  }

  #insert(sha256: string, bytes: Uint8Array): void {
    this.#blobs.set(sha256, bytes);
    this.#total += bytes.byteLength;
    try {
      this.#makeRoom(0, sha256);
    } catch {
      // Over the bound with only pinned blobs left: they stay; the next append says so.
    }
  }

  /** Evicts least recently used unpinned blobs until `incoming` more bytes fit; else `CACHE_FULL`. */
  #makeRoom(incoming: number, keep: string): void {
    for (const [victim, bytes] of [...this.#blobs]) {
      if (this.#total + this.#partialTotal + incoming <= this.maxBytes) return;
      if (victim === keep || this.#pins.has(victim)) continue;
      this.#blobs.delete(victim);
      this.#total -= bytes.byteLength;
    }
    if (this.#total + this.#partialTotal + incoming > this.maxBytes) {
      throw cacheFullError(incoming, this.maxBytes, this.#total, this.#partialTotal);
    }
  }
}

/** Creates an empty in-memory {@link BlobStore}. */
export function memoryBlobStore(options: MemoryBlobStoreOptions = {}): BlobStore {
  return new MemoryBlobStore(options);
}
