/**
 * The contract of a worker's blob cache, and the checks every implementation shares.
 *
 * @module
 */
import { DinferError, DinferErrorCode } from '../errors.js';

/**
 * A cache of immutable, SHA-256 addressed blobs with resumable writes and LRU eviction: where a
 * worker keeps the shards it is sent. Implementations: `diskBlobStore` (`@dinfer/core/node`)
 * and {@link memoryBlobStore}.
 */
export interface BlobStore {
  /** The bound on the total bytes of complete blobs. */
  readonly maxBytes: number;
  /** SHA-256 of every complete blob, least recently used first. */
  list(): string[];
  /** True when the complete blob `sha256` is stored. */
  has(sha256: string): boolean;
  /** Bytes of `sha256` received so far (partial download), 0 when none. */
  receivedBytes(sha256: string): number;
  /** Total bytes of the complete blobs. */
  totalBytes(): number;
  /** Bytes held by partial blobs; they count against {@link maxBytes} too. */
  partialBytes(): number;
  /**
   * Appends `bytes` to the partial blob `sha256`. `offset` must equal {@link receivedBytes}
   * (the resume point), else `DINFER_ERR_PROTOCOL` with `details.expectedOffset`; `totalBytes`
   * must stay the same across the chunks of one blob (a partial blob that disagrees with it is
   * dropped and the transfer must restart at 0). Complete and partial blobs together stay
   * within {@link maxBytes}: least recently used unpinned blobs are evicted to make room, and
   * when that is not enough the chunk is refused with `DINFER_ERR_CACHE_FULL`. Resolves with
   * the bytes now held.
   */
  append(sha256: string, offset: number, bytes: Uint8Array, totalBytes: number): Promise<number>;
  /**
   * Verifies the partial blob `sha256` (hash and, when known, size) and moves it into the
   * cache. On a mismatch the partial file is deleted and `DINFER_ERR_HASH_MISMATCH` thrown.
   */
  complete(sha256: string): Promise<void>;
  /** Reads a complete blob and marks it recently used. `DINFER_ERR_MODEL_NOT_FOUND` when absent. */
  read(sha256: string): Promise<Uint8Array>;
  /** Hashes and stores `bytes` directly; resolves with its SHA-256. */
  put(bytes: Uint8Array): Promise<string>;
  /** Protects `sha256` from eviction (counted: each pin needs one unpin). Works before the blob arrives. */
  pin(sha256: string): void;
  /** Releases one {@link pin}. */
  unpin(sha256: string): void;
  /** Deletes a complete or partial blob (pinned or not). */
  delete(sha256: string): Promise<void>;
  /**
   * Releases the store: later calls fail, and what it was receiving stays resumable by the next
   * store that opens the same cache (a store whose process dies is released the same way).
   * Idempotent.
   */
  close(): Promise<void>;
}

const SHA256 = /^[0-9a-f]{64}$/;

/** True when `value` is a lowercase SHA-256 hex string (a blob id). */
export function isBlobId(value: unknown): value is string {
  return typeof value === 'string' && SHA256.test(value);
}

/** Checks a blob id. @throws DinferError INVALID_ARGUMENT */
export function checkBlobId(sha256: unknown): string {
  if (!isBlobId(sha256)) {
    throw new DinferError(
      DinferErrorCode.INVALID_ARGUMENT,
      'blob id must be a lowercase SHA-256 hex string',
      {
        details: { sha256: typeof sha256 === 'string' ? sha256.slice(0, 80) : typeof sha256 },
      },
    );
  }
  return sha256;
}

/**
 * Checks the arguments of {@link BlobStore.append} that need no state: the id, the chunk, and
 * that offset and total are non-negative integers with the blob within `maxBytes`.
 * @throws DinferError INVALID_ARGUMENT
 */
export function checkAppend(
  sha256: string,
  offset: number,
  bytes: Uint8Array,
  totalBytes: number,
  maxBytes: number,
): void {
  checkBlobId(sha256);
  if (!(bytes instanceof Uint8Array)) {
    throw new DinferError(DinferErrorCode.INVALID_ARGUMENT, 'blob chunk must be a Uint8Array');
  }
  if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(totalBytes) || totalBytes < 0) {
    throw new DinferError(
      DinferErrorCode.INVALID_ARGUMENT,
      'offset and totalBytes must be non-negative integers',
      {
        details: { sha256, offset, totalBytes },
      },
    );
  }
  checkBlobSize(sha256, totalBytes, maxBytes);
}

/** @throws DinferError INVALID_ARGUMENT when a blob of `totalBytes` can never fit `maxBytes`. */
export function checkBlobSize(sha256: string, totalBytes: number, maxBytes: number): void {
  if (totalBytes > maxBytes) {
    throw new DinferError(
      DinferErrorCode.INVALID_ARGUMENT,
      `blob ${sha256} of ${totalBytes} bytes is larger than the cache bound of ${maxBytes} bytes`,
      { details: { sha256, totalBytes, maxBytes } },
    );
  }
}

/**
 * Checks that a chunk continues a partial blob: it starts where the held bytes end, the
 * declared total did not change (`expectedTotal`, when known) and it ends within the total.
 * @throws DinferError PROTOCOL, with `details.expectedOffset` for a wrong offset
 */
export function checkChunkPosition(
  sha256: string,
  offset: number,
  chunkBytes: number,
  totalBytes: number,
  held: { readonly size: number; readonly total: number | undefined },
): void {
  if (offset !== held.size) {
    throw new DinferError(
      DinferErrorCode.PROTOCOL,
      `blob ${sha256}: chunk at offset ${offset}, expected offset ${held.size}`,
      {
        details: { sha256, offset, expectedOffset: held.size },
      },
    );
  }
  if (held.total !== undefined && held.total !== totalBytes) {
    throw new DinferError(
      DinferErrorCode.PROTOCOL,
      `blob ${sha256}: totalBytes changed from ${held.total} to ${totalBytes}`,
      {
        details: { sha256, totalBytes, expectedTotalBytes: held.total },
      },
    );
  }
  if (offset + chunkBytes > totalBytes) {
    throw new DinferError(
      DinferErrorCode.PROTOCOL,
      `blob ${sha256}: chunk ends at ${offset + chunkBytes}, past totalBytes ${totalBytes}`,
      { details: { sha256, offset, bytes: chunkBytes, totalBytes } },
    );
  }
}

/** The error of a chunk or blob that would push a full cache past its bound. */
export function cacheFullError(
  incoming: number,
  maxBytes: number,
  totalBytes: number,
  partialBytes: number,
): DinferError {
  return new DinferError(
    DinferErrorCode.CACHE_FULL,
    `blob cache full: ${incoming} more bytes would make ${totalBytes + partialBytes + incoming} of ${maxBytes} (complete ${totalBytes}, partial ${partialBytes}); the rest is pinned`,
    { details: { maxBytes, totalBytes, partialBytes, incoming } },
  );
}

/** Counted pins: each {@link pin} needs one {@link unpin}. */
export class PinCounts {
  readonly #counts = new Map<string, number>();

  /** Adds one pin on `sha256`. */
  pin(sha256: string): void {
    checkBlobId(sha256);
    this.#counts.set(sha256, (this.#counts.get(sha256) ?? 0) + 1);
  }

  /** Releases one pin on `sha256`. */
  unpin(sha256: string): void {
    checkBlobId(sha256);
    const count = this.#counts.get(sha256) ?? 0;
    if (count <= 1) this.#counts.delete(sha256);
    else this.#counts.set(sha256, count - 1);
  }

  /** True while `sha256` has a pin. */
  has(sha256: string): boolean {
    return this.#counts.has(sha256);
  }
}
