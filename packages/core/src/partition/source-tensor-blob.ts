/**
 * A weight of a model's artifacts as a stage's tensor blob, read from the source's shard
 * files when shipped: as stored (a quantized manifest entry kept as it is), or re-encoded in
 * the form the operator asks for. Re-encoding goes value by value with parameters fixed once
 * for the whole weight, so every range of the blob reads the same bytes the whole blob hashes
 * to, and the blob is never held whole except while its hash is taken.
 *
 * @module
 */
import type * as tf from '@tensorflow/tfjs';
import { platform } from '#platform';
import type { SourceWeight } from '../model/artifact-source.js';
import type { StoredQuantization } from '../model/source-quantization.js';
import { checkRange } from '../ship/byte-range.js';
import type { TensorBlob } from './stage-artifacts.js';
import {
  decodeStored,
  encodeQuantized,
  quantizeWeight,
  storedElementBytes,
  type WeightQuantization,
} from './weight-quantization.js';

/** The stored form of a weight re-encoded: its manifest entry and value-by-value encoder. */
interface Reencoding {
  readonly entry: tf.io.WeightsManifestEntry;
  /** The whole weight re-encoded. */
  readonly bytes: Uint8Array;
  /** Bytes of whole values `[first, last)` of the weight, from their stored bytes. */
  readonly encode: (stored: Uint8Array) => Uint8Array;
}

/** True when `form` leaves the weight's stored bytes as they are. */
function keepsStored(weight: SourceWeight, form: WeightQuantization | undefined): boolean {
  return form === undefined || weight.entry.dtype !== 'float32' || weight.entry.quantization?.dtype === form;
}

/**
 * The tensor blob of `weight` in `form` (`undefined`: as stored). Reads the weight once, to
 * hash it (and, for `uint8`, to fix its affine parameters from its range).
 *
 * @throws DinferError INVALID_ARGUMENT when `uint8` meets a non-finite value; the source's
 *   read errors.
 */
export async function sourceTensorBlob(
  weight: SourceWeight,
  form: WeightQuantization | undefined,
): Promise<TensorBlob> {
  const stored = await weight.read();
  const name = weight.entry.name;
  if (keepsStored(weight, form)) {
    return {
      name,
      entry: { ...weight.entry },
      sha256: platform.sha256Hex([stored]),
      byteLength: weight.byteLength,
      read: (start, end) => weight.read(start, end),
    };
  }
  const reencoding = reencode(weight, stored, form!);
  const storedBytes = storedElementBytes(weight.entry.quantization);
  const encodedBytes = storedElementBytes(reencoding.entry.quantization);
  const byteLength = reencoding.bytes.byteLength;
  return {
    name,
    entry: reencoding.entry,
    sha256: platform.sha256Hex([reencoding.bytes]),
    byteLength,
    read: async (start = 0, end = byteLength) => {
      checkRange(start, end, byteLength, `weight ${name}`);
      const first = Math.floor(start / encodedBytes);
      const last = Math.ceil(end / encodedBytes);
      const values = await weight.read(first * storedBytes, last * storedBytes);
      const offset = first * encodedBytes;
      return reencoding.encode(values).subarray(start - offset, end - offset);
    },
  };
}

function reencode(weight: SourceWeight, stored: Uint8Array, form: WeightQuantization): Reencoding {
  const source: StoredQuantization | undefined = weight.entry.quantization;
  const whole = quantizeWeight(decodeStored(stored, source), form, weight.entry.name);
  const quantization = whole.quantization;
  const { name, shape, dtype } = weight.entry;
  return {
    entry: { name, shape, dtype, quantization },
    bytes: whole.bytes,
    encode: (bytes) => encodeQuantized(decodeStored(bytes, source), quantization),
  };
}
