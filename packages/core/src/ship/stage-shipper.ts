/**
 * Ships a stage's blobs (its `model.json` and one blob per weight tensor, see
 * `stage-artifacts.ts`) to a worker, sending as few bytes as it can:
 *
 * 1. blobs the worker is known to hold are skipped; one `blob.status` request asks about all
 *    the others at once;
 * 2. a partly received blob resumes from the worker's last acknowledged byte;
 * 3. a missing tensor whose weight name has a same-sized blob the worker holds (the tensor of
 *    another version, from {@link ShipStageOptions.baseFor}) is sent as a compressed delta
 *    (`blob.delta`, see `delta.ts`) when that is smaller than the deflated tensor itself;
 * 4. everything else goes in acknowledged chunks (`blob.chunk`), deflated where that pays.
 *
 * Deltas are sent whole, one request each, for tensors up to
 * {@link ShipStageOptions.maxDeltaBytes} (64 MiB by default; the largest ResNet50 tensor is
 * 9.4 MB and frames allow hundreds of MB); larger tensors go in resumable chunks. A delta
 * cut off by a dropped link is sent again in full next time: it is not resumable.
 *
 * Blobs are read from their sources as they are sent, a chunk at a time (a delta reads its
 * tensor and base whole), so shipping a stage holds a few chunks, not the stage.
 *
 * Encoded deltas and deflated sizes are memoised per tensor blob (weakly: they go when the
 * deployment holding the tensor goes), so rolling a version out to N workers encodes each
 * delta once.
 *
 * @module
 */
import { platform } from '#platform';
import type { Connection } from '../connection/connection.js';
import { DinferError, DinferErrorCode, isDinferError } from '../errors.js';
import type { StageBlobs, TensorBlob } from '../partition/stage-artifacts.js';
import { parseMessage } from '../protocol/messages.js';
import { sendBlobChunks, sendBlobDelta } from './blob-shipper.js';
import { type BlobSource, heldBlob, readBlob } from './blob-source.js';
import { type EncodedDelta, encodeDelta } from './delta.js';

/** A blob the worker holds that a tensor may be sent as a delta against. */
export type DeltaBase = BlobSource;

/** Finds a delta base for the weight `weightName` whose blob is `byteLength` bytes. */
export type DeltaBaseLookup = (weightName: string, byteLength: number) => DeltaBase | undefined;

/** Options for {@link shipStage}. */
export interface ShipStageOptions {
  /**
   * SHA-256 of the blobs the worker holds completely (announced at join, shipped since). Read
   * to skip blobs, and updated in place: blobs the worker turns out to hold or that were sent
   * are added; a delta base the worker turned out to lack is removed.
   */
  readonly held: Set<string>;
  /** Delta bases (see {@link deltaBaseLookup}); none: no deltas. */
  readonly baseFor?: DeltaBaseLookup | undefined;
  /** Raw bytes per chunk. Default 1 MiB. */
  readonly chunkBytes?: number | undefined;
  /** Deflate chunks where that pays (see `ShipBlobOptions.compress`). Default true. */
  readonly compress?: boolean | undefined;
  /** Largest tensor sent as a delta, in bytes. Default 64 MiB. */
  readonly maxDeltaBytes?: number | undefined;
  /** Blobs in flight at once. Default 4. */
  readonly concurrency?: number | undefined;
  readonly signal?: AbortSignal | undefined;
  /** Timeout of each request, in ms. Default 60 s. */
  readonly timeoutMs?: number | undefined;
  /** Called as blobs arrive, with raw bytes the worker holds of the stage's blobs so far. */
  readonly onProgress?: ((sentBytes: number, totalBytes: number) => void) | undefined;
}

/** What shipping a stage cost. */
export interface ShipStageResult {
  /** Raw bytes of the stage's distinct blobs (topology and tensors). */
  readonly totalBytes: number;
  /** Payload bytes put on the wire: chunk attachments plus delta attachments. */
  readonly wireBytes: number;
  /** Distinct blobs of the stage. */
  readonly blobs: number;
  /** Blobs the worker already held (nothing sent). */
  readonly skippedBlobs: number;
  /** Blobs sent as deltas. */
  readonly deltaBlobs: number;
  /** Blobs sent in chunks (whole or resumed). */
  readonly chunkedBlobs: number;
  /** Raw bytes the worker already held of partly received blobs (not sent again). */
  readonly resumedBytes: number;
}

/** Default largest tensor sent as a delta. */
export const DEFAULT_MAX_DELTA_BYTES = 64 * 1024 * 1024;

interface Pending {
  readonly blob: BlobSource;
  /** The tensor, for delta lookup; undefined for the topology. */
  readonly tensor: TensorBlob | undefined;
}

const deltaMemo = new WeakMap<BlobSource, { base: string; delta: EncodedDelta }>();
const deflatedMemo = new WeakMap<BlobSource, { chunkBytes: number; bytes: number }>();

/** Bytes the chunked shipper would put on the wire for `blob` (deflate level 1 per chunk). */
async function deflatedSize(blob: BlobSource, chunkBytes: number): Promise<number> {
  const memo = deflatedMemo.get(blob);
  if (memo?.chunkBytes === chunkBytes) return memo.bytes;
  let total = 0;
  for (let offset = 0; offset < blob.byteLength; offset += chunkBytes) {
    const raw = await blob.read(offset, Math.min(offset + chunkBytes, blob.byteLength));
    total += Math.min(raw.byteLength, platform.deflateRaw(raw, 1).byteLength);
  }
  deflatedMemo.set(blob, { chunkBytes, bytes: total });
  return total;
}

/** Bytes per stored element of a tensor: the shuffle lane of its delta. */
function elementBytesOf(tensor: TensorBlob): 1 | 2 | 4 {
  const dtype = tensor.entry.quantization?.dtype ?? tensor.entry.dtype;
  return dtype === 'uint8' || dtype === 'bool' ? 1 : dtype === 'float16' || dtype === 'uint16' ? 2 : 4;
}

async function deltaFor(tensor: TensorBlob, base: DeltaBase): Promise<EncodedDelta> {
  const memo = deltaMemo.get(tensor);
  if (memo?.base === base.sha256) return memo.delta;
  const delta = encodeDelta(await readBlob(base), await readBlob(tensor), {
    elementBytes: elementBytesOf(tensor),
  });
  deltaMemo.set(tensor, { base: base.sha256, delta });
  return delta;
}

/**
 * A {@link DeltaBaseLookup} over `candidates` (other versions' stages of the same model, most
 * preferred first): the first tensor of that weight name and byte length whose blob `held`
 * says the worker has.
 */
export function deltaBaseLookup(
  candidates: readonly StageBlobs[],
  held: ReadonlySet<string>,
): DeltaBaseLookup {
  const byName = new Map<string, TensorBlob[]>();
  for (const stage of candidates) {
    for (const tensor of stage.tensors) {
      const list = byName.get(tensor.name);
      if (list) list.push(tensor);
      else byName.set(tensor.name, [tensor]);
    }
  }
  return (weightName, byteLength) => {
    for (const tensor of byName.get(weightName) ?? []) {
      if (tensor.byteLength === byteLength && held.has(tensor.sha256)) return tensor;
    }
    return undefined;
  };
}

function isRemote(error: unknown, code: string): boolean {
  return isDinferError(error, DinferErrorCode.REMOTE) && error.details.remoteCode === code;
}

/**
 * Makes the worker on `connection` hold every blob of `stage` (see the module comment for
 * how). Does not load the stage: send `stage.load` afterwards.
 *
 * @throws DinferError INVALID_ARGUMENT for bad options; the transport's and the worker's
 *   errors (REMOTE, e.g. `HASH_MISMATCH`) otherwise. Blobs completed before a failure stay
 *   in `held` and on the worker.
 */
export async function shipStage(
  connection: Connection,
  stage: StageBlobs,
  options: ShipStageOptions,
): Promise<ShipStageResult> {
  const concurrency = options.concurrency ?? 4;
  if (!Number.isSafeInteger(concurrency) || concurrency < 1) {
    throw new DinferError(DinferErrorCode.INVALID_ARGUMENT, 'concurrency must be a positive integer');
  }
  const chunkBytes = options.chunkBytes ?? 1 << 20;
  const maxDeltaBytes = options.maxDeltaBytes ?? DEFAULT_MAX_DELTA_BYTES;
  const timeoutMs = options.timeoutMs ?? 60_000;
  const { held } = options;

  const blobs = new Map<string, Pending>();
  blobs.set(stage.topologySha256, {
    blob: heldBlob(stage.topology, stage.topologySha256),
    tensor: undefined,
  });
  for (const tensor of stage.tensors) {
    if (!blobs.has(tensor.sha256)) blobs.set(tensor.sha256, { blob: tensor, tensor });
  }
  let totalBytes = 0;
  for (const { blob } of blobs.values()) totalBytes += blob.byteLength;

  let sentBytes = 0;
  let skippedBlobs = 0;
  const unknown = [...blobs.values()].filter((p) => !held.has(p.blob.sha256));
  for (const { blob } of blobs.values()) if (held.has(blob.sha256)) sentBytes += blob.byteLength;
  skippedBlobs = blobs.size - unknown.length;

  const resumeFrom = new Map<string, number>();
  const toSend: Pending[] = [];
  if (unknown.length > 0) {
    const reply = await connection.request(
      { header: { type: 'blob.status', blobs: unknown.map((p) => p.blob.sha256) }, attachments: [] },
      { signal: options.signal, timeoutMs },
    );
    const status = parseMessage(reply.header, 'blob.status.result');
    const missing = new Set(status.missing);
    for (const p of status.partial) resumeFrom.set(p.sha256, p.receivedBytes);
    for (const pending of unknown) {
      const { sha256, byteLength } = pending.blob;
      if (missing.has(sha256) || resumeFrom.has(sha256)) {
        toSend.push(pending);
      } else {
        held.add(sha256);
        skippedBlobs++;
        sentBytes += byteLength;
      }
    }
  }
  options.onProgress?.(sentBytes, totalBytes);

  let wireBytes = 0;
  let deltaBlobs = 0;
  let chunkedBlobs = 0;
  let resumedBytes = 0;
  const requestOptions = { signal: options.signal, timeoutMs };

  const sendOne = async ({ blob, tensor }: Pending): Promise<void> => {
    const partial = resumeFrom.get(blob.sha256);
    if (
      partial === undefined &&
      tensor !== undefined &&
      options.baseFor !== undefined &&
      blob.byteLength > 0 &&
      blob.byteLength <= maxDeltaBytes
    ) {
      const base = options.baseFor(tensor.name, blob.byteLength);
      if (base !== undefined && base.sha256 !== blob.sha256) {
        const delta = await deltaFor(tensor, base);
        if (delta.bytes.byteLength < (await deflatedSize(blob, chunkBytes))) {
          try {
            const sentDelta = await sendBlobDelta(
              connection,
              blob.sha256,
              base.sha256,
              delta,
              requestOptions,
            );
            wireBytes += sentDelta;
            deltaBlobs++;
            return;
          } catch (error) {
            // The worker evicted or never had the base: send the tensor whole.
            if (!isRemote(error, DinferErrorCode.MODEL_NOT_FOUND)) throw error;
            held.delete(base.sha256);
          }
        }
      }
    }
    const from = partial ?? 0;
    resumedBytes += Math.min(from, blob.byteLength);
    let before = 0;
    const result = await sendBlobChunks(connection, blob.sha256, blob, from, {
      chunkBytes,
      compress: options.compress,
      ...requestOptions,
      onProgress: (received) => {
        sentBytes += received - before;
        before = received;
        options.onProgress?.(sentBytes, totalBytes);
      },
    });
    sentBytes -= before; // counted again once the blob is complete
    wireBytes += result.wireBytes;
    chunkedBlobs++;
  };

  let next = 0;
  let failed = false;
  const lane = async (): Promise<void> => {
    while (next < toSend.length && !failed) {
      const pending = toSend[next++]!;
      try {
        await sendOne(pending);
      } catch (error) {
        failed = true;
        throw error;
      }
      held.add(pending.blob.sha256);
      sentBytes += pending.blob.byteLength;
      options.onProgress?.(sentBytes, totalBytes);
    }
  };
  const lanes = await Promise.allSettled(Array.from({ length: Math.min(concurrency, toSend.length) }, lane));
  const failure = lanes.find((l): l is PromiseRejectedResult => l.status === 'rejected');
  if (failure) throw failure.reason;

  return {
    totalBytes,
    wireBytes,
    blobs: blobs.size,
    skippedBlobs,
    deltaBlobs,
    chunkedBlobs,
    resumedBytes,
  };
}
