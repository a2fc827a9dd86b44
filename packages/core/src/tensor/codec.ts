/**
 * The tensor wire codec: {@link TensorData} to a list of {@link TensorDescriptor}s (for the
 * JSON header) plus one binary attachment per tensor, and back.
 *
 * Bytes are little-endian whatever the host; on a little-endian host (every platform Node
 * and browsers run on today) uncompressed, unencoded tensors go out as views of their data
 * and come back as views of their attachment when it is aligned (copied otherwise).
 * Optional encodings shrink float32 tensors: `fp16` (half precision, round-to-nearest-even)
 * and `int8` (per-tensor affine). Optional raw-deflate compression uses `node:zlib`, and
 * inflating is capped at the size the descriptor declares, so a small hostile stream cannot
 * expand beyond the limits.
 *
 * @module
 */
import { platform } from '#platform';
import { DinferError, DinferErrorCode } from '../errors.js';
import { checkShape, parseTensorDescriptors, type TensorLimits } from './descriptor.js';
import { float16ToFloat32, float32ToFloat16 } from './fp16.js';
import { dequantizeInt8, int8Parameters, quantizeInt8 } from './int8.js';
import {
  dtypeByteSize,
  type TensorArray,
  type TensorData,
  type TensorDescriptor,
  type TensorDType,
  type TensorEncoding,
} from './types.js';

/** Options for {@link encodeTensors}. */
export interface EncodeTensorsOptions {
  /** Encoding of float32 tensors (other dtypes always travel as they are). Default `none`. */
  encoding?: TensorEncoding | undefined;
  /** Deflate attachments larger than this many bytes (kept only when smaller). Default: never. */
  deflateAboveBytes?: number | undefined;
  /** zlib level, 1 (fast) to 9 (small). Default 1: activations compress little, speed matters more. */
  deflateLevel?: number | undefined;
}

/** The result of {@link encodeTensors}: descriptors for the header and the matching attachments. */
export interface EncodedTensors {
  readonly descriptors: TensorDescriptor[];
  readonly attachments: Uint8Array[];
}

/** True when this host stores multi-byte numbers little-endian. */
export const HOST_LITTLE_ENDIAN: boolean = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

const ARRAY_TYPES: Record<TensorDType, new (length: number) => TensorArray> = {
  float32: Float32Array,
  int32: Int32Array,
  bool: Uint8Array,
  uint8: Uint8Array,
};

function bytesOf(array: ArrayBufferView): Uint8Array {
  return new Uint8Array(array.buffer, array.byteOffset, array.byteLength);
}

/** Returns a copy of `bytes` with every `size`-byte word reversed (endianness swap). */
function swapped(bytes: Uint8Array, size: number): Uint8Array {
  const out = new Uint8Array(bytes.byteLength);
  for (let i = 0; i < bytes.byteLength; i += size) {
    for (let j = 0; j < size; j++) out[i + j] = bytes[i + size - 1 - j]!;
  }
  return out;
}

/** Native-order bytes to little-endian wire bytes (a view on little-endian hosts). */
function toLittleEndian(bytes: Uint8Array, size: number): Uint8Array {
  return HOST_LITTLE_ENDIAN || size === 1 ? bytes : swapped(bytes, size);
}

/**
 * Little-endian wire bytes to a buffer usable as a typed array of `size`-byte values: a view
 * when aligned on a little-endian host, otherwise a fresh (aligned) copy.
 */
function nativeAligned(bytes: Uint8Array, size: number): { buffer: ArrayBufferLike; byteOffset: number } {
  if (size > 1 && !HOST_LITTLE_ENDIAN) {
    const copy = swapped(bytes, size);
    return { buffer: copy.buffer, byteOffset: 0 };
  }
  if (bytes.byteOffset % size === 0) return { buffer: bytes.buffer, byteOffset: bytes.byteOffset };
  return { buffer: bytes.slice().buffer, byteOffset: 0 };
}

function invalid(index: number, reason: string): DinferError {
  return new DinferError(DinferErrorCode.TENSOR_INVALID, `tensor ${index}: ${reason}`, {
    details: { index },
  });
}

function checkTensor(tensor: TensorData, index: number): number {
  if (typeof tensor !== 'object' || tensor === null || !(tensor.dtype in ARRAY_TYPES)) {
    throw invalid(
      index,
      `unsupported dtype ${JSON.stringify((tensor as { dtype?: unknown } | null)?.dtype)}`,
    );
  }
  const elements = checkShape(tensor.shape, index, 8, Number.MAX_SAFE_INTEGER);
  if (!(tensor.data instanceof ARRAY_TYPES[tensor.dtype])) {
    throw invalid(index, `${tensor.dtype} data must be a ${ARRAY_TYPES[tensor.dtype].name}`);
  }
  const expected = elements;
  if (tensor.data.length !== expected) {
    throw invalid(
      index,
      `shape [${tensor.shape.join(', ')}] needs ${expected} values, data has ${tensor.data.length}`,
    );
  }
  return elements;
}

/**
 * Encodes tensors for the wire: one attachment per tensor, in order, and a descriptor for
 * each. Throws `DINFER_ERR_TENSOR_INVALID` when a tensor's data does not match its dtype and
 * shape (or holds NaN/infinity under `int8`).
 *
 * Unencoded, uncompressed attachments are views of the tensors' own memory (no copy): do not
 * modify the data until the envelope has been sent.
 */
export function encodeTensors(
  tensors: readonly TensorData[],
  options: EncodeTensorsOptions = {},
): EncodedTensors {
  const requested = options.encoding ?? 'none';
  if (!['none', 'fp16', 'int8'].includes(requested)) {
    throw new DinferError(
      DinferErrorCode.INVALID_ARGUMENT,
      `unknown tensor encoding ${JSON.stringify(requested)}`,
    );
  }
  const threshold = options.deflateAboveBytes;
  const level = options.deflateLevel ?? 1;
  const descriptors: TensorDescriptor[] = [];
  const attachments: Uint8Array[] = [];
  tensors.forEach((tensor, index) => {
    checkTensor(tensor, index);
    if (tensor.name !== undefined && (typeof tensor.name !== 'string' || tensor.name.length > 256)) {
      throw invalid(index, 'name must be a string of at most 256 characters');
    }
    const encoding: TensorEncoding = tensor.dtype === 'float32' ? requested : 'none';
    let bytes: Uint8Array;
    let quantization: { scale: number; zeroPoint: number } | undefined;
    if (encoding === 'fp16') {
      bytes = toLittleEndian(bytesOf(float32ToFloat16(tensor.data as Float32Array)), 2);
    } else if (encoding === 'int8') {
      quantization = int8Parameters(tensor.data as Float32Array);
      bytes = bytesOf(quantizeInt8(tensor.data as Float32Array, quantization));
    } else {
      bytes = toLittleEndian(bytesOf(tensor.data), dtypeByteSize(tensor.dtype));
    }
    let compression: 'none' | 'deflate' = 'none';
    if (threshold !== undefined && bytes.byteLength > threshold) {
      const deflated = platform.deflateRaw(bytes, level);
      if (deflated.byteLength < bytes.byteLength) {
        bytes = deflated;
        compression = 'deflate';
      }
    }
    descriptors.push({
      ...(tensor.name === undefined ? {} : { name: tensor.name }),
      dtype: tensor.dtype,
      shape: [...tensor.shape],
      byteLength: bytes.byteLength,
      encoding,
      ...(quantization === undefined ? {} : { quantization }),
      compression,
    });
    attachments.push(bytes);
  });
  return { descriptors, attachments };
}

/**
 * Decodes tensors received from a peer. `descriptors` is untrusted: every field, the
 * attachment count and sizes, and the total decoded size against `limits.maxBytes` are
 * checked before anything is allocated. Uncompressed `none` tensors are zero-copy views of
 * their attachment when aligned. Throws `DINFER_ERR_TENSOR_INVALID` or `DINFER_ERR_PROTOCOL`.
 */
export function decodeTensors(
  descriptors: unknown,
  attachments: readonly Uint8Array[],
  limits: TensorLimits,
): TensorData[] {
  const checked = parseTensorDescriptors(descriptors, limits);
  if (!Array.isArray(attachments) || attachments.length !== checked.length) {
    throw new DinferError(
      DinferErrorCode.PROTOCOL,
      `${checked.length} tensor descriptors but ${Array.isArray(attachments) ? attachments.length : 'no'} attachments`,
    );
  }
  return checked.map(({ descriptor, elements, encodedBytes }, index): TensorData => {
    const attachment = attachments[index];
    if (!(attachment instanceof Uint8Array))
      throw new DinferError(DinferErrorCode.PROTOCOL, `attachment ${index} is not bytes`);
    if (attachment.byteLength !== descriptor.byteLength) {
      throw invalid(
        index,
        `attachment has ${attachment.byteLength} bytes, descriptor says ${descriptor.byteLength}`,
      );
    }
    let bytes = attachment;
    if (descriptor.compression === 'deflate') {
      let inflated: Uint8Array;
      try {
        inflated = platform.inflateRaw(attachment, encodedBytes);
      } catch (error) {
        throw new DinferError(
          DinferErrorCode.TENSOR_INVALID,
          `tensor ${index}: deflate stream is corrupt or inflates beyond the declared ${encodedBytes} bytes`,
          { cause: error, details: { index } },
        );
      }
      if (inflated.byteLength !== encodedBytes) {
        throw invalid(index, `inflated to ${inflated.byteLength} bytes, expected ${encodedBytes}`);
      }
      bytes = new Uint8Array(inflated.buffer, inflated.byteOffset, inflated.byteLength);
    }
    const base = descriptor.name === undefined ? {} : { name: descriptor.name };
    const shape = descriptor.shape;
    if (descriptor.encoding === 'fp16') {
      const { buffer, byteOffset } = nativeAligned(bytes, 2);
      return {
        ...base,
        dtype: 'float32',
        shape,
        data: float16ToFloat32(new Uint16Array(buffer, byteOffset, elements)),
      };
    }
    if (descriptor.encoding === 'int8') {
      const codes = new Int8Array(bytes.buffer, bytes.byteOffset, elements);
      return { ...base, dtype: 'float32', shape, data: dequantizeInt8(codes, descriptor.quantization!) };
    }
    const dtype = descriptor.dtype;
    const length = elements;
    const { buffer, byteOffset } = nativeAligned(bytes, dtypeByteSize(dtype));
    if (dtype === 'float32')
      return { ...base, dtype, shape, data: new Float32Array(buffer, byteOffset, length) };
    if (dtype === 'int32') return { ...base, dtype, shape, data: new Int32Array(buffer, byteOffset, length) };
    const data = new Uint8Array(buffer, byteOffset, length);
    if (dtype === 'bool') {
      for (let i = 0; i < length; i++) {
        if (data[i]! > 1) throw invalid(index, `bool value ${data[i]} at ${i} is neither 0 nor 1`);
      }
    }
    return { ...base, dtype, shape, data };
  });
}
