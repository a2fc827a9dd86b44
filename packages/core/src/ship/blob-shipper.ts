/**
 * Ships a content-addressed blob to a worker: asks what it already holds, resumes a partial
 * transfer from the last acknowledged byte, sends deflated chunks, and relies on the worker
 * to verify the SHA-256 before it marks the blob complete. Also sends a blob as a delta
 * against one the worker holds (`blob.delta`).
 *
 * @module
 */
import { platform } from '#platform';
import type { Connection } from '../connection/connection.js';
import { DinferError, DinferErrorCode } from '../errors.js';
import { parseMessage } from '../protocol/messages.js';
import { type BlobSource, heldBlob } from './blob-source.js';
import type { EncodedDelta } from './delta.js';

/** Options for {@link shipBlob}. */
export interface ShipBlobOptions {
  /** Raw bytes per chunk. Default 1 MiB. */
  readonly chunkBytes?: number | undefined;
  /**
   * Deflate chunks (kept only when smaller). A blob whose chunk deflate shrinks by less than
   * an eighth is sent raw from then on: float weights deflate by about 7%, at some 35 MB/s of
   * one core (measured), far slower than a LAN or loopback link moves them. Default true.
   */
  readonly compress?: boolean | undefined;
  readonly signal?: AbortSignal | undefined;
  /** Per-chunk request timeout in ms. Default 60 s. */
  readonly timeoutMs?: number | undefined;
  /** Called after each acknowledged chunk with raw bytes the worker holds. */
  readonly onProgress?: ((receivedBytes: number, totalBytes: number) => void) | undefined;
}

/** What a shipment cost. */
export interface ShipBlobResult {
  /** Bytes put on the wire for chunk payloads (after compression). */
  readonly wireBytes: number;
  /** Raw bytes that had to be sent (0 when the worker already had the blob). */
  readonly rawBytes: number;
  /** Where the transfer started (non-zero when it resumed a partial blob). */
  readonly resumedFrom: number;
}

/** Ships `bytes` (whose hex SHA-256 is `sha256`) to the worker on `connection`. */
export async function shipBlob(
  connection: Connection,
  sha256: string,
  bytes: Uint8Array,
  options: ShipBlobOptions = {},
): Promise<ShipBlobResult> {
  const statusReply = await connection.request(
    { header: { type: 'blob.status', blobs: [sha256] }, attachments: [] },
    { signal: options.signal, timeoutMs: options.timeoutMs ?? 60_000 },
  );
  const status = parseMessage(statusReply.header, 'blob.status.result');
  if (!status.missing.includes(sha256) && !status.partial.some((p) => p.sha256 === sha256)) {
    options.onProgress?.(bytes.byteLength, bytes.byteLength);
    return { wireBytes: 0, rawBytes: 0, resumedFrom: bytes.byteLength };
  }
  const resumedFrom = status.partial.find((p) => p.sha256 === sha256)?.receivedBytes ?? 0;
  return sendBlobChunks(connection, sha256, bytes, resumedFrom, options);
}

/**
 * Sends a blob (its bytes, or a {@link BlobSource} read a chunk at a time) in chunks from
 * `from` on (the worker's resume point, from a `blob.status` answer), each acknowledged
 * before the next; the final chunk makes the worker verify the SHA-256 and store the blob.
 *
 * @throws DinferError PROTOCOL when the worker acknowledges other than what was sent;
 *   the worker's own errors (e.g. `HASH_MISMATCH`) as REMOTE errors.
 */
export async function sendBlobChunks(
  connection: Connection,
  sha256: string,
  blob: Uint8Array | BlobSource,
  from: number,
  options: ShipBlobOptions = {},
): Promise<ShipBlobResult> {
  const source = blob instanceof Uint8Array ? heldBlob(blob, sha256) : blob;
  const total = source.byteLength;
  const chunkBytes = options.chunkBytes ?? 1 << 20;
  if (!Number.isSafeInteger(chunkBytes) || chunkBytes <= 0) {
    throw new DinferError(DinferErrorCode.INVALID_ARGUMENT, 'chunkBytes must be a positive integer');
  }
  let compress = options.compress ?? true;
  const requestOptions = { signal: options.signal, timeoutMs: options.timeoutMs ?? 60_000 };
  const resumedFrom = Math.min(Math.max(0, from), total);
  let offset = resumedFrom;
  let wireBytes = 0;
  do {
    const end = Math.min(offset + chunkBytes, total);
    const raw = await source.read(offset, end);
    let payload: Uint8Array = raw;
    let compression: 'none' | 'deflate' = 'none';
    if (compress && raw.byteLength > 0) {
      const deflated = platform.deflateRaw(raw, 1);
      if (deflated.byteLength < raw.byteLength) {
        payload = deflated;
        compression = 'deflate';
      }
      // Not worth the CPU for the rest of this blob.
      if (deflated.byteLength > raw.byteLength - raw.byteLength / 8) compress = false;
    }
    const final = end === total;
    const reply = await connection.request(
      {
        header: {
          type: 'blob.chunk',
          sha256,
          offset,
          rawBytes: raw.byteLength,
          totalBytes: total,
          compression,
          final,
        },
        attachments: [payload],
      },
      requestOptions,
    );
    const ack = parseMessage(reply.header, 'blob.ack');
    if (ack.sha256 !== sha256 || ack.receivedBytes !== end) {
      throw new DinferError(
        DinferErrorCode.PROTOCOL,
        `worker acknowledged ${ack.receivedBytes} bytes of blob ${sha256.slice(0, 12)}, expected ${end}`,
      );
    }
    wireBytes += payload.byteLength;
    offset = end;
    options.onProgress?.(offset, total);
    if (final && !ack.complete) {
      throw new DinferError(DinferErrorCode.PROTOCOL, `worker did not complete blob ${sha256.slice(0, 12)}`);
    }
  } while (offset < total);
  return { wireBytes, rawBytes: total - resumedFrom, resumedFrom };
}

/**
 * Sends the blob `sha256` as a delta against `base` (a blob the worker holds) in one
 * `blob.delta` request. Resolves with the payload bytes put on the wire.
 *
 * @throws DinferError REMOTE with `remoteCode` `MODEL_NOT_FOUND` when the worker lacks the base
 *   (send the blob whole instead), `HASH_MISMATCH` when the rebuilt blob is not `sha256`.
 */
export async function sendBlobDelta(
  connection: Connection,
  sha256: string,
  base: string,
  delta: EncodedDelta,
  options: Pick<ShipBlobOptions, 'signal' | 'timeoutMs'> = {},
): Promise<number> {
  const reply = await connection.request(
    {
      header: {
        type: 'blob.delta',
        sha256,
        base,
        totalBytes: delta.totalBytes,
        compression: delta.compression,
      },
      attachments: [delta.bytes],
    },
    { signal: options.signal, timeoutMs: options.timeoutMs ?? 60_000 },
  );
  const ack = parseMessage(reply.header, 'blob.ack');
  if (ack.sha256 !== sha256 || !ack.complete || ack.receivedBytes !== delta.totalBytes) {
    throw new DinferError(
      DinferErrorCode.PROTOCOL,
      `worker did not complete blob ${sha256.slice(0, 12)} from its delta`,
    );
  }
  return delta.bytes.byteLength;
}
