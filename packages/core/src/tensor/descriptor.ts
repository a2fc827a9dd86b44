/**
 * Validation of {@link TensorDescriptor}s that arrive from a peer. Everything is checked
 * before a single byte is allocated for the tensor.
 *
 * @module
 */
import { DinferError, DinferErrorCode } from '../errors.js';
import { assertSafeJson, isRecord } from '../protocol/json-guard.js';
import {
  dtypeByteSize,
  type Int8Quantization,
  TENSOR_DTYPES,
  type TensorCompression,
  type TensorDescriptor,
  type TensorDType,
  type TensorEncoding,
} from './types.js';

/** Limits enforced when decoding tensors from the wire. */
export interface TensorLimits {
  /** Most decoded bytes of all tensors together (and of each one). Required: size it to your memory. */
  readonly maxBytes: number;
  /** Most dimensions of a shape. Default 8. */
  readonly maxRank?: number | undefined;
  /** Most elements of one tensor. Default `Number.MAX_SAFE_INTEGER` (`maxBytes` usually binds first). */
  readonly maxElements?: number | undefined;
  /** Most tensors in one message. Default 1024. */
  readonly maxTensors?: number | undefined;
}

/** Longest tensor name accepted. */
export const MAX_TENSOR_NAME_LENGTH = 256;

const KEYS = new Set(['name', 'dtype', 'shape', 'byteLength', 'encoding', 'quantization', 'compression']);
const ENCODINGS: readonly TensorEncoding[] = ['none', 'fp16', 'int8'];
const COMPRESSIONS: readonly TensorCompression[] = ['none', 'deflate'];

/** Wire bytes per element for an encoding of `dtype`, before compression. */
export function encodedElementBytes(dtype: TensorDType, encoding: TensorEncoding): number {
  if (encoding === 'fp16') return 2;
  if (encoding === 'int8') return 1;
  return dtypeByteSize(dtype);
}

function invalid(index: number, reason: string, details: Record<string, unknown> = {}): DinferError {
  return new DinferError(DinferErrorCode.TENSOR_INVALID, `tensor ${index}: ${reason}`, {
    details: { index, ...details },
  });
}

/**
 * Number of elements of `shape`, validating every entry (a non-negative safe integer) and
 * the rank, and stopping as soon as the product passes `maxElements`.
 */
export function checkShape(shape: unknown, index: number, maxRank: number, maxElements: number): number {
  if (!Array.isArray(shape)) throw invalid(index, 'shape must be an array');
  if (shape.length > maxRank) throw invalid(index, `rank ${shape.length} exceeds the limit of ${maxRank}`);
  let elements = 1;
  for (const dim of shape) {
    if (typeof dim !== 'number' || !Number.isSafeInteger(dim) || dim < 0) {
      throw invalid(index, `shape entries must be non-negative integers, got ${JSON.stringify(dim)}`);
    }
    elements *= dim;
    if (elements > maxElements) throw invalid(index, `more than ${maxElements} elements`, { shape });
  }
  return elements;
}

/** A validated descriptor plus the sizes derived from it. */
export interface CheckedDescriptor {
  readonly descriptor: TensorDescriptor;
  readonly elements: number;
  /** Bytes of the attachment once decompressed (still encoded). */
  readonly encodedBytes: number;
  /** Bytes of the decoded typed array. */
  readonly decodedBytes: number;
}

function checkQuantization(value: unknown, index: number): Int8Quantization {
  if (!isRecord(value) || Object.keys(value).length !== 2) {
    throw invalid(index, 'quantization must be { scale, zeroPoint }');
  }
  const { scale, zeroPoint } = value;
  if (typeof scale !== 'number' || !Number.isFinite(scale) || scale <= 0) {
    throw invalid(index, 'quantization.scale must be a positive finite number');
  }
  if (typeof zeroPoint !== 'number' || !Number.isInteger(zeroPoint) || zeroPoint < -128 || zeroPoint > 127) {
    throw invalid(index, 'quantization.zeroPoint must be an integer in [-128, 127]');
  }
  return { scale, zeroPoint };
}

/**
 * Validates descriptors from the wire against `limits` (including the total decoded size)
 * and returns them typed with their sizes. Structural faults throw `DINFER_ERR_PROTOCOL`;
 * bad dtypes, shapes, encodings or sizes throw `DINFER_ERR_TENSOR_INVALID`.
 */
export function parseTensorDescriptors(value: unknown, limits: TensorLimits): CheckedDescriptor[] {
  const maxRank = limits.maxRank ?? 8;
  const maxElements = limits.maxElements ?? Number.MAX_SAFE_INTEGER;
  const maxTensors = limits.maxTensors ?? 1024;
  if (!Number.isFinite(limits.maxBytes) || limits.maxBytes < 0) {
    throw new DinferError(
      DinferErrorCode.INVALID_ARGUMENT,
      'limits.maxBytes must be a non-negative finite number',
    );
  }
  if (!Array.isArray(value))
    throw new DinferError(DinferErrorCode.PROTOCOL, 'tensor descriptors must be an array');
  if (value.length > maxTensors) {
    throw new DinferError(
      DinferErrorCode.TENSOR_INVALID,
      `${value.length} tensors exceed the limit of ${maxTensors}`,
    );
  }
  assertSafeJson(value, 'tensor descriptors', { maxDepth: 4, maxNodes: maxTensors * (maxRank + 16) + 1 });
  let total = 0;
  return value.map((raw: unknown, index): CheckedDescriptor => {
    if (!isRecord(raw))
      throw new DinferError(DinferErrorCode.PROTOCOL, `tensor descriptor ${index} must be an object`);
    for (const key of Object.keys(raw)) {
      if (!KEYS.has(key)) throw invalid(index, `unexpected field "${key}"`);
    }
    const { name, dtype, shape, byteLength, encoding, quantization, compression } = raw;
    if (name !== undefined && (typeof name !== 'string' || name.length > MAX_TENSOR_NAME_LENGTH)) {
      throw invalid(index, `name must be a string of at most ${MAX_TENSOR_NAME_LENGTH} characters`);
    }
    if (typeof dtype !== 'string' || !TENSOR_DTYPES.includes(dtype as TensorDType)) {
      throw invalid(index, `unsupported dtype ${JSON.stringify(dtype)}`);
    }
    const d = dtype as TensorDType;
    if (typeof encoding !== 'string' || !ENCODINGS.includes(encoding as TensorEncoding)) {
      throw invalid(index, `unsupported encoding ${JSON.stringify(encoding)}`);
    }
    const e = encoding as TensorEncoding;
    if (e !== 'none' && d !== 'float32')
      throw invalid(index, `encoding ${e} applies to float32 only, not ${d}`);
    if ((e === 'int8') !== (quantization !== undefined)) {
      throw invalid(index, 'quantization must be present exactly when encoding is int8');
    }
    const q = e === 'int8' ? checkQuantization(quantization, index) : undefined;
    if (typeof compression !== 'string' || !COMPRESSIONS.includes(compression as TensorCompression)) {
      throw invalid(index, `unsupported compression ${JSON.stringify(compression)}`);
    }
    const c = compression as TensorCompression;
    if (typeof byteLength !== 'number' || !Number.isSafeInteger(byteLength) || byteLength < 0) {
      throw invalid(index, 'byteLength must be a non-negative integer');
    }
    const elements = checkShape(shape, index, maxRank, maxElements);
    const decodedBytes = elements * dtypeByteSize(d);
    const encodedBytes = elements * encodedElementBytes(d, e);
    total += decodedBytes;
    if (total > limits.maxBytes) {
      throw invalid(index, `decoded tensors exceed the limit of ${limits.maxBytes} bytes`, {
        maxBytes: limits.maxBytes,
      });
    }
    if (c === 'none' && byteLength !== encodedBytes) {
      throw invalid(index, `byteLength ${byteLength} does not match shape and dtype (${encodedBytes} bytes)`);
    }
    if (c === 'deflate' && byteLength > limits.maxBytes) {
      throw invalid(
        index,
        `compressed byteLength ${byteLength} exceeds the limit of ${limits.maxBytes} bytes`,
      );
    }
    const descriptor: TensorDescriptor = {
      ...(name === undefined ? {} : { name: name as string }),
      dtype: d,
      shape: (shape as number[]).slice(),
      byteLength,
      encoding: e,
      ...(q === undefined ? {} : { quantization: q }),
      compression: c,
    };
    return { descriptor, elements, encodedBytes, decodedBytes };
  });
}
