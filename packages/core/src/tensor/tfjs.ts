/**
 * Conversions between TF.js tensors and plain {@link TensorData}.
 *
 * @module
 */
import * as tf from '@tensorflow/tfjs';
import { DinferError, DinferErrorCode } from '../errors.js';
import type { TensorData } from './types.js';

/**
 * Creates a TF.js tensor from plain data (the caller disposes it). `uint8` becomes `int32`
 * (TF.js has no uint8 dtype).
 */
export function toTfTensor(data: TensorData): tf.Tensor {
  const shape = [...data.shape];
  switch (data.dtype) {
    case 'float32':
      return tf.tensor(data.data, shape, 'float32');
    case 'int32':
      return tf.tensor(data.data, shape, 'int32');
    case 'uint8':
      return tf.tensor(Int32Array.from(data.data), shape, 'int32');
    case 'bool':
      return tf.tensor(data.data, shape, 'bool');
  }
}

/**
 * Reads a TF.js tensor into plain data (downloads it from the backend; the tensor is not
 * disposed). `string` and `complex64` tensors cannot travel as tensors and throw `DINFER_ERR_TENSOR_INVALID`.
 */
export async function fromTfTensor(tensor: tf.Tensor, name?: string): Promise<TensorData> {
  const shape = [...tensor.shape];
  const base = name === undefined ? {} : { name };
  switch (tensor.dtype) {
    case 'float32':
      return { ...base, dtype: 'float32', shape, data: (await tensor.data<'float32'>()) as Float32Array };
    case 'int32':
      return { ...base, dtype: 'int32', shape, data: (await tensor.data<'int32'>()) as Int32Array };
    case 'bool':
      return {
        ...base,
        dtype: 'bool',
        shape,
        data: Uint8Array.from((await tensor.data<'bool'>()) as Uint8Array),
      };
    default:
      throw new DinferError(
        DinferErrorCode.TENSOR_INVALID,
        `dtype ${tensor.dtype} cannot be sent as a tensor`,
      );
  }
}
