/**
 * Plain tensor data as it crosses the wire: no TF.js dependency, so a transport or a browser
 * worker can move tensors without loading a backend.
 *
 * @module
 */

/**
 * The dtypes the wire codec carries: the real numeric TF.js dtypes plus `uint8` (raw bytes
 * such as image pixels; it becomes an `int32` TF.js tensor). `bool` holds one byte (0 or 1)
 * per element. (`complex64` is left out: the wasm backend has no complex kernels, and no
 * LayersModel activation is complex; `string` tensors are not numeric.)
 */
export type TensorDType = 'float32' | 'int32' | 'bool' | 'uint8';

/** Every {@link TensorDType}, for validation. */
export const TENSOR_DTYPES: readonly TensorDType[] = ['float32', 'int32', 'bool', 'uint8'];

/** The typed array holding each dtype's values. */
export interface TensorArrayByDType {
  float32: Float32Array;
  int32: Int32Array;
  bool: Uint8Array;
  uint8: Uint8Array;
}

/** Any typed array a {@link TensorData} can hold. */
export type TensorArray = TensorArrayByDType[TensorDType];

/** A tensor as plain data: dtype, shape and its values in row-major order. */
export type TensorData = {
  [D in TensorDType]: {
    /** Optional name (e.g. the model tensor it stands for). At most 256 characters. */
    readonly name?: string | undefined;
    readonly dtype: D;
    readonly shape: readonly number[];
    /** Row-major values, one per element. */
    readonly data: TensorArrayByDType[D];
  };
}[TensorDType];

/** How a tensor's values are encoded in its attachment. */
export type TensorEncoding = 'none' | 'fp16' | 'int8';

/** How an attachment is compressed. */
export type TensorCompression = 'none' | 'deflate';

/** Parameters of the per-tensor affine int8 encoding: `value = (q - zeroPoint) * scale`. */
export interface Int8Quantization {
  /** Positive, finite step between two adjacent codes. */
  readonly scale: number;
  /** The code (an integer in [-128, 127]) that stands for 0. */
  readonly zeroPoint: number;
}

/**
 * Describes one tensor in a message header; its bytes are the attachment at the same index.
 * Always validated with `parseTensorDescriptors` before use.
 */
export interface TensorDescriptor {
  readonly name?: string;
  readonly dtype: TensorDType;
  readonly shape: readonly number[];
  /** Bytes of the attachment as sent (after encoding and compression). */
  readonly byteLength: number;
  /** `fp16` and `int8` apply to `float32` tensors only. */
  readonly encoding: TensorEncoding;
  /** Present exactly when `encoding` is `int8`. */
  readonly quantization?: Int8Quantization;
  readonly compression: TensorCompression;
}

/** Bytes of one element of `dtype` in memory and, with encoding `none`, on the wire. */
export function dtypeByteSize(dtype: TensorDType): number {
  switch (dtype) {
    case 'float32':
    case 'int32':
      return 4;
    case 'bool':
    case 'uint8':
      return 1;
  }
}
