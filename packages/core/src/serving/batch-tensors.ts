/**
 * Joining requests into one batch and splitting a batch's answer back: tensors are
 * concatenated and sliced along dimension 0 (the batch dimension), values copied.
 *
 * @module
 */
import { DinferError, DinferErrorCode } from '../errors.js';
import type { TensorArrayByDType, TensorData, TensorDType } from '../tensor/types.js';

/** A zeroed typed array of `dtype` holding `length` elements. */
function allocate<D extends TensorDType>(dtype: D, length: number): TensorArrayByDType[D] {
  switch (dtype) {
    case 'float32':
      return new Float32Array(length) as TensorArrayByDType[D];
    case 'int32':
      return new Int32Array(length) as TensorArrayByDType[D];
    default:
      return new Uint8Array(length) as TensorArrayByDType[D];
  }
}

/** Rows (dimension 0) of a tensor; 0 for a scalar. */
export function rowCount(tensor: TensorData): number {
  return tensor.shape[0] ?? 0;
}

/**
 * Concatenates tensors along dimension 0. Every part must have the same dtype and the same
 * dimensions after the first; the result takes the first part's name.
 *
 * @throws DinferError TENSOR_INVALID when the parts disagree or a part's data does not fit its shape.
 */
export function concatRows(parts: readonly TensorData[]): TensorData {
  const first = parts[0];
  if (first === undefined) {
    throw new DinferError(DinferErrorCode.INVALID_ARGUMENT, 'concatRows needs at least one tensor');
  }
  if (parts.length === 1) return first;
  const tail = first.shape.slice(1);
  let rows = 0;
  let length = 0;
  for (const part of parts) {
    const same =
      part.dtype === first.dtype &&
      part.shape.length === first.shape.length &&
      part.shape.every((d, k) => k === 0 || d === tail[k - 1]);
    if (!same) {
      throw new DinferError(
        DinferErrorCode.TENSOR_INVALID,
        `cannot batch a ${part.dtype} [${part.shape.join(',')}] tensor with a ${first.dtype} [${first.shape.join(',')}] one`,
      );
    }
    const elements = part.shape.reduce((a, b) => a * b, 1);
    if (part.data.length !== elements) {
      throw new DinferError(
        DinferErrorCode.TENSOR_INVALID,
        `tensor of shape [${part.shape.join(',')}] holds ${part.data.length} values (${elements} expected)`,
      );
    }
    rows += rowCount(part);
    length += part.data.length;
  }
  const data = allocate(first.dtype, length);
  let offset = 0;
  for (const part of parts) {
    data.set(part.data, offset);
    offset += part.data.length;
  }
  return {
    ...(first.name === undefined ? {} : { name: first.name }),
    dtype: first.dtype,
    shape: [rows, ...tail],
    data,
  } as TensorData;
}

/**
 * Copies rows `[start, start + rows)` of `tensor` (dimension 0) into a tensor of its own.
 *
 * @throws DinferError INTERNAL when the range lies outside the tensor (a service returned
 *   fewer rows than it was given).
 */
export function sliceRows(tensor: TensorData, start: number, rows: number): TensorData {
  const total = rowCount(tensor);
  if (tensor.shape.length === 0 || start < 0 || rows < 0 || start + rows > total) {
    throw new DinferError(
      DinferErrorCode.INTERNAL,
      `cannot take rows [${start}, ${start + rows}) of an output of shape [${tensor.shape.join(',')}]`,
    );
  }
  const per = total === 0 ? 0 : tensor.data.length / total;
  const data = tensor.data.slice(start * per, (start + rows) * per);
  return {
    ...(tensor.name === undefined ? {} : { name: tensor.name }),
    dtype: tensor.dtype,
    shape: [rows, ...tensor.shape.slice(1)],
    data,
  } as TensorData;
}
