import { DinferError, DinferErrorCode } from '../errors.js';
import type { TensorSpec } from '../model/types.js';
import type { TensorData } from '../tensor/types.js';

function show(shape: readonly (number | null)[]): string {
  return `[${shape.map((d) => (d === null ? 'null' : String(d))).join(',')}]`;
}

/**
 * Checks request inputs against a model signature: count, dtype, rank, every fixed
 * dimension, one shared batch size of at least 1, and data length. Throws
 * `DINFER_ERR_TENSOR_INVALID` with a message that says what was expected.
 */
export function validateModelInputs(specs: readonly TensorSpec[], inputs: readonly TensorData[]): void {
  if (inputs.length !== specs.length) {
    throw new DinferError(
      DinferErrorCode.TENSOR_INVALID,
      `the model takes ${specs.length} input(s) (${specs.map((s) => s.name).join(', ')}); got ${inputs.length}`,
    );
  }
  let batch: number | undefined;
  specs.forEach((spec, i) => {
    const input = inputs[i] as TensorData;
    const where = `input "${spec.name}"`;
    if (input.dtype !== spec.dtype) {
      throw new DinferError(
        DinferErrorCode.TENSOR_INVALID,
        `${where} must be ${spec.dtype}; got ${input.dtype}`,
      );
    }
    const shape = input.shape;
    const fits =
      shape.length === spec.shape.length && spec.shape.every((d, k) => d === null || d === shape[k]);
    if (!fits) {
      throw new DinferError(
        DinferErrorCode.TENSOR_INVALID,
        `${where} shape ${show(shape)} does not match the model input ${show(spec.shape)}`,
        { details: { expected: spec.shape, got: shape } },
      );
    }
    const n = shape[0] ?? 0;
    if (!(n >= 1)) throw new DinferError(DinferErrorCode.TENSOR_INVALID, `${where} has an empty batch`);
    if (batch !== undefined && n !== batch) {
      throw new DinferError(
        DinferErrorCode.TENSOR_INVALID,
        `inputs disagree on the batch size (${batch} vs ${n})`,
      );
    }
    batch = n;
    const elements = shape.reduce((a, b) => a * b, 1) * ((input.dtype as string) === 'complex64' ? 2 : 1);
    if (input.data.length !== elements) {
      throw new DinferError(
        DinferErrorCode.TENSOR_INVALID,
        `${where} has ${input.data.length} values for shape ${show(shape)} (${elements} expected)`,
      );
    }
  });
}
