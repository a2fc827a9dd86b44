/**
 * The worker's side of shard shipping: answers which blobs it lacks, appends chunks to the
 * blob store (inflating and checking each against its header), and rebuilds blobs sent as
 * deltas against a cached base, verifying every blob's SHA-256 before it is stored.
 *
 * @module
 */
import { platform } from '#platform';
import { DinferError, DinferErrorCode, isDinferError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import type {
  BlobChunkMessage,
  BlobDeltaMessage,
  BlobStatusMessage,
  ProtocolMessage,
} from '../protocol/messages.js';
import type { BlobStore } from '../ship/blob-store.js';
import { applyDelta } from '../ship/delta.js';

/** Limits and collaborators of a {@link BlobReceiver}. */
export interface BlobReceiverOptions {
  readonly store: BlobStore;
  /** Largest raw size of one chunk. */
  readonly maxChunkBytes: number;
  /** Largest blob rebuilt from a delta. */
  readonly maxDeltaBytes: number;
  readonly logger: Logger;
  readonly metrics: Metrics;
}

/** Receives blobs into a worker's store. */
export class BlobReceiver {
  readonly #store: BlobStore;
  readonly #maxChunkBytes: number;
  readonly #maxDeltaBytes: number;
  readonly #logger: Logger;
  readonly #metrics: Metrics;

  constructor(options: BlobReceiverOptions) {
    this.#store = options.store;
    this.#maxChunkBytes = options.maxChunkBytes;
    this.#maxDeltaBytes = options.maxDeltaBytes;
    this.#logger = options.logger;
    this.#metrics = options.metrics;
  }

  /** Which of the listed blobs are missing entirely, and which are partly received. */
  status(message: BlobStatusMessage): ProtocolMessage {
    return {
      type: 'blob.status.result',
      missing: message.blobs.filter((sha) => !this.#store.has(sha) && this.#store.receivedBytes(sha) === 0),
      partial: message.blobs
        .filter((sha) => !this.#store.has(sha) && this.#store.receivedBytes(sha) > 0)
        .map((sha) => ({ sha256: sha, receivedBytes: this.#store.receivedBytes(sha) })),
    };
  }

  /** Appends one chunk; the final one completes the blob (hash checked). */
  async chunk(message: BlobChunkMessage, attachments: readonly Uint8Array[]): Promise<ProtocolMessage> {
    const { sha256, offset, rawBytes, totalBytes } = message;
    if (attachments.length !== 1) {
      throw new DinferError(
        DinferErrorCode.PROTOCOL,
        `blob.chunk carries ${attachments.length} attachments, not 1`,
      );
    }
    if (rawBytes > this.#maxChunkBytes) {
      throw new DinferError(
        DinferErrorCode.PROTOCOL,
        `blob chunk of ${rawBytes} bytes exceeds the limit of ${this.#maxChunkBytes}`,
      );
    }
    if (message.final && offset + rawBytes !== totalBytes) {
      throw new DinferError(
        DinferErrorCode.PROTOCOL,
        `final chunk of ${sha256} ends at ${offset + rawBytes}, not ${totalBytes}`,
      );
    }
    if (this.#store.has(sha256))
      return { type: 'blob.ack', sha256, receivedBytes: totalBytes, complete: true };
    const payload = attachments[0]!;
    let raw: Uint8Array = payload;
    if (message.compression === 'deflate') {
      try {
        raw = platform.inflateRaw(payload, rawBytes);
      } catch (error) {
        throw new DinferError(
          DinferErrorCode.PROTOCOL,
          `blob chunk of ${sha256} does not inflate to ${rawBytes} bytes`,
          {
            cause: error,
          },
        );
      }
    }
    if (raw.byteLength !== rawBytes) {
      throw new DinferError(
        DinferErrorCode.PROTOCOL,
        `blob chunk of ${sha256} holds ${raw.byteLength} bytes, header says ${rawBytes}`,
      );
    }
    const received = await this.#store.append(sha256, offset, raw, totalBytes);
    this.#metrics.increment('dinfer_worker_blob_received_bytes_total', {}, raw.byteLength);
    if (!message.final) return { type: 'blob.ack', sha256, receivedBytes: received, complete: false };
    try {
      await this.#store.complete(sha256);
    } catch (error) {
      // A partial file that disagrees with what was acknowledged (e.g. written to by a runtime
      // that died mid-write) would fail every retry: drop it, so the next transfer restarts.
      if (!isDinferError(error, DinferErrorCode.HASH_MISMATCH))
        await this.#store.delete(sha256).catch(() => {});
      throw error;
    }
    this.#logger.info({ sha256, bytes: totalBytes }, 'blob received');
    return { type: 'blob.ack', sha256, receivedBytes: received, complete: true };
  }

  /**
   * Rebuilds a blob from a delta against a cached base; stores it only when its SHA-256 is
   * the one announced (`HASH_MISMATCH` otherwise, nothing stored).
   */
  async delta(message: BlobDeltaMessage, attachments: readonly Uint8Array[]): Promise<ProtocolMessage> {
    const { sha256, base, totalBytes } = message;
    if (attachments.length !== 1) {
      throw new DinferError(
        DinferErrorCode.PROTOCOL,
        `blob.delta carries ${attachments.length} attachments, not 1`,
      );
    }
    if (totalBytes > this.#maxDeltaBytes) {
      throw new DinferError(
        DinferErrorCode.PROTOCOL,
        `blob.delta of ${totalBytes} bytes exceeds the limit of ${this.#maxDeltaBytes}`,
      );
    }
    if (this.#store.has(sha256))
      return { type: 'blob.ack', sha256, receivedBytes: totalBytes, complete: true };
    if (!this.#store.has(base)) {
      throw new DinferError(DinferErrorCode.MODEL_NOT_FOUND, `delta base ${base} is not in the cache`, {
        details: { sha256, base },
      });
    }
    const baseBytes = await this.#store.read(base);
    const rebuilt = applyDelta(baseBytes, attachments[0]!, message.compression, totalBytes);
    const actual = platform.sha256Hex([rebuilt]);
    if (actual !== sha256) {
      this.#logger.warn({ sha256, actual, base }, 'blob rebuilt from a delta has the wrong hash, discarded');
      throw new DinferError(
        DinferErrorCode.HASH_MISMATCH,
        `blob ${sha256} rebuilt from a delta against ${base} hashes to ${actual}; discarded`,
        { details: { sha256, actualSha256: actual, base } },
      );
    }
    await this.#store.put(rebuilt);
    this.#metrics.increment('dinfer_worker_blob_received_bytes_total', {}, attachments[0]!.byteLength);
    this.#logger.debug({ sha256, base, bytes: totalBytes }, 'blob rebuilt from a delta');
    return { type: 'blob.ack', sha256, receivedBytes: totalBytes, complete: true };
  }
}
