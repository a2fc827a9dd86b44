/**
 * Datatype names: the KServe v2 / Open Inference Protocol names (`FP32`, `INT32`...) and the
 * dtypes of dinfer tensors and model signatures.
 *
 * @module
 */
import type { DType, TensorDType } from '@dinfer/core';

/** Every datatype the Open Inference Protocol defines. */
export const KSERVE_DATATYPES: readonly string[] = [
  'BOOL',
  'UINT8',
  'UINT16',
  'UINT32',
  'UINT64',
  'INT8',
  'INT16',
  'INT32',
  'INT64',
  'FP16',
  'FP32',
  'FP64',
  'BYTES',
];

const TO_DTYPE: Readonly<Record<string, TensorDType>> = {
  FP32: 'float32',
  INT32: 'int32',
  UINT8: 'uint8',
  BOOL: 'bool',
};

/** The protocol datatypes dinfer accepts in requests. */
export const SUPPORTED_KSERVE_DATATYPES: readonly string[] = Object.keys(TO_DTYPE);

/** The tensor dtype of a protocol datatype, or `undefined` when dinfer cannot carry it. */
export function datatypeToDType(datatype: string): TensorDType | undefined {
  return Object.hasOwn(TO_DTYPE, datatype) ? TO_DTYPE[datatype] : undefined;
}

/** The protocol datatype of a tensor or signature dtype (`BYTES` for strings, `FP32` for complex64 parts). */
export function dtypeToDatatype(dtype: TensorDType | DType): string {
  switch (dtype) {
    case 'float32':
    case 'complex64':
      return 'FP32';
    case 'int32':
      return 'INT32';
    case 'uint8':
      return 'UINT8';
    case 'bool':
      return 'BOOL';
    case 'string':
      return 'BYTES';
  }
}

/** True when a tensor of dtype `given` can feed a model input of dtype `spec` (uint8 feeds int32). */
export function dtypeFeeds(spec: DType, given: TensorDType): boolean {
  return spec === 'int32' ? given === 'int32' || given === 'uint8' : spec === given;
}

/** The dtype JSON values of a model input are read as, or `undefined` for non-numeric inputs. */
export function jsonInputDType(spec: DType): TensorDType | undefined {
  return spec === 'float32' || spec === 'int32' || spec === 'bool' ? spec : undefined;
}
