/**
 * A model's artifacts on disk, opened without reading its weights: the checked `model.json`
 * and, for every weight of the manifest, where its stored bytes lie in the shard files (a
 * weight's offset is the sum of the sizes before it in its group, across the group's files).
 * Weights are read on demand, a byte range at a time, so a model far larger than this
 * process's memory can be partitioned and shipped from it.
 *
 * @module
 */
import type * as tf from '@tensorflow/tfjs';
import { DinferError, DinferErrorCode } from '../errors.js';
import type { FileAccess } from '../platform/platform.js';
import { checkRange } from '../ship/byte-range.js';
import { type CheckedModelJson, parseModelJson, throwIfAborted, weightEntryBytes } from './artifacts.js';
import { requireFileAccess, utf8Bytes } from './file-access.js';
import { resolveModelJsonPath } from './fs-handler.js';
import { ioError } from './model-errors.js';

/** One weight of the manifest and where its stored bytes are. */
export interface SourceWeight {
  /** Its manifest entry (name, shape, dtype, optional stored `quantization`). */
  readonly entry: tf.io.WeightsManifestEntry;
  /** Position in the manifest, counting every group's weights in order. */
  readonly index: number;
  /** Bytes stored (the quantized size for a weight stored quantized). */
  readonly byteLength: number;
  /** Reads stored bytes `[start, end)` (default: all of them). */
  read(start?: number, end?: number): Promise<Uint8Array>;
}

/** A model's artifacts, opened. */
export interface ModelArtifactSource {
  /** Absolute path of `model.json`. */
  readonly path: string;
  /** The checked `model.json`. */
  readonly json: CheckedModelJson;
  /** Every weight, in manifest order. */
  readonly weights: readonly SourceWeight[];
  /** The weight called `name`. */
  weight(name: string): SourceWeight | undefined;
  /** Bytes of `model.json` plus every shard. */
  readonly totalBytes: number;
}

interface FilePiece {
  readonly file: string;
  /** Where the piece starts in the group's concatenated bytes. */
  readonly start: number;
  readonly size: number;
}

async function readRange(
  files: FileAccess,
  pieces: readonly FilePiece[],
  start: number,
  end: number,
): Promise<Uint8Array> {
  const out = new Uint8Array(end - start);
  for (const piece of pieces) {
    const from = Math.max(start, piece.start);
    const to = Math.min(end, piece.start + piece.size);
    if (from >= to) continue;
    let read: number;
    try {
      read = await files.readInto(piece.file, from - piece.start, out.subarray(from - start, to - start));
    } catch (error) {
      throw ioError(piece.file, 'reading', error);
    }
    if (read < to - from) {
      throw new DinferError(
        DinferErrorCode.MODEL_CORRUPT,
        `${piece.file}: the file is shorter than when it was opened`,
        {
          details: { path: piece.file },
        },
      );
    }
  }
  return out;
}

/**
 * Opens a model's artifacts: reads and checks `model.json` (a layers model with a
 * well-formed manifest), and checks that every weight group's shard files hold exactly the
 * bytes its weights declare, reading only their sizes.
 *
 * @param source A `model.json` path, a directory holding one, or a `file://` URL.
 * @throws DinferError MODEL_NOT_FOUND for a missing file; MODEL_CORRUPT for bad JSON, shard
 *   sizes that do not match the manifest, or a weight listed twice; MODEL_UNSUPPORTED for a
 *   graph model or a variable-size (string) weight; MODEL_IO, ABORTED.
 */
export async function openModelArtifacts(
  source: string,
  options: { readonly signal?: AbortSignal | undefined } = {},
): Promise<ModelArtifactSource> {
  const files = requireFileAccess(source);
  const path = await resolveModelJsonPath(source);
  throwIfAborted(options.signal, path);
  let text: string;
  try {
    text = await files.readText(path, options.signal);
  } catch (error) {
    throw ioError(path, 'reading', error);
  }
  const json = parseModelJson(text, path);
  const dir = files.dirname(path);
  const weights: SourceWeight[] = [];
  const byName = new Map<string, SourceWeight>();
  let totalBytes = utf8Bytes(text);
  for (const [g, group] of json.weightsManifest.entries()) {
    const pieces: FilePiece[] = [];
    let groupBytes = 0;
    for (const relative of group.paths) {
      const file = files.join(dir, relative);
      throwIfAborted(options.signal, file);
      let size: number;
      try {
        size = (await files.stat(file)).size;
      } catch (error) {
        throw ioError(file, 'reading', error);
      }
      pieces.push({ file, start: groupBytes, size });
      groupBytes += size;
    }
    totalBytes += groupBytes;
    let offset = 0;
    for (const entry of group.weights) {
      const byteLength = weightEntryBytes(entry);
      if (byteLength === undefined) {
        throw new DinferError(
          DinferErrorCode.MODEL_UNSUPPORTED,
          `${path}: weight ${entry.name} of dtype ${entry.dtype} has no fixed size`,
          { details: { path, weight: entry.name, dtype: entry.dtype } },
        );
      }
      if (byName.has(entry.name)) {
        throw new DinferError(
          DinferErrorCode.MODEL_CORRUPT,
          `${path}: the manifest lists weight ${entry.name} twice`,
          {
            details: { path, weight: entry.name },
          },
        );
      }
      const begin = offset;
      const weight: SourceWeight = {
        entry,
        index: weights.length,
        byteLength,
        read: async (start = 0, end = byteLength) => {
          checkRange(start, end, byteLength, `weight ${entry.name}`);
          return readRange(files, pieces, begin + start, begin + end);
        },
      };
      offset += byteLength;
      weights.push(weight);
      byName.set(entry.name, weight);
    }
    if (offset !== groupBytes) {
      throw new DinferError(
        DinferErrorCode.MODEL_CORRUPT,
        `${path}: weight group ${g} (${group.paths.join(', ')}) holds ${groupBytes} bytes but its ${group.weights.length} weights need ${offset}`,
        { details: { path, group: g, expectedBytes: offset, actualBytes: groupBytes } },
      );
    }
  }
  return { path, json, weights, weight: (name) => byName.get(name), totalBytes };
}
