/**
 * An {@link InferenceService} that runs one whole LayersModel in this process: the reference
 * for tests, a single-machine deployment, and the master's fallback in degraded mode.
 *
 * @module
 */
import * as tf from '@tensorflow/tfjs';
import { DinferError, DinferErrorCode } from '../errors.js';
import type { DType, TensorSpec } from '../model/types.js';
import { fromTfTensor, toTfTensor } from '../tensor/tfjs.js';
import type { TensorData, TensorDType } from '../tensor/types.js';
import type {
  InferenceService,
  InferOptions,
  InferResult,
  ServedModel,
  ServiceHealth,
} from './inference-service.js';

/** Options of {@link localInferenceService}. */
export interface LocalInferenceServiceOptions {
  /** Name clients use to address the model. */
  readonly name: string;
  /** Version reported with every answer. Default `'1'`. */
  readonly version?: string | undefined;
  /** Class labels of the first output (index -> label); its last dimension must match when known. */
  readonly labels?: readonly string[] | undefined;
  /** Worker name in the stage trace. Default `'local'`. */
  readonly worker?: string | undefined;
  /** Report answers (and health) as degraded, e.g. when the master stands in for workers. */
  readonly degraded?: boolean | undefined;
}

/** Formats a shape with `null` for unknown dimensions, e.g. `[null,224,224,3]`. */
function formatShape(shape: readonly (number | null)[]): string {
  return `[${shape.map((d) => (d === null ? 'null' : String(d))).join(',')}]`;
}

/** Which {@link TensorDType}s can feed a model input of `dtype` (uint8 feeds int32 inputs). */
function accepts(dtype: DType, given: TensorDType): boolean {
  if (dtype === 'int32') return given === 'int32' || given === 'uint8';
  return dtype === given;
}

function invalid(message: string, details: Record<string, unknown>): DinferError {
  return new DinferError(DinferErrorCode.TENSOR_INVALID, message, { details });
}

/** Checks `inputs` against the model signature: count, dtype, rank, fixed dims, data length, one batch size. */
function checkInputs(model: ServedModel, inputs: readonly TensorData[]): void {
  if (inputs.length !== model.inputs.length) {
    throw invalid(`model "${model.name}" takes ${model.inputs.length} input(s), got ${inputs.length}`, {
      model: model.name,
    });
  }
  let batch: number | undefined;
  inputs.forEach((input, i) => {
    const spec = model.inputs[i]!;
    const details = { model: model.name, input: spec.name };
    if (!accepts(spec.dtype, input.dtype)) {
      throw invalid(
        `input "${spec.name}" has dtype ${input.dtype}; the model expects ${spec.dtype}`,
        details,
      );
    }
    const fits =
      input.shape.length === spec.shape.length &&
      input.shape.every(
        (d, k) => Number.isInteger(d) && d >= 0 && (spec.shape[k] === null || spec.shape[k] === d),
      );
    if (!fits) {
      throw invalid(
        `input "${spec.name}" shape ${formatShape(input.shape)} does not match model input ${formatShape(spec.shape)}`,
        details,
      );
    }
    const size = input.shape.reduce((a, b) => a * b, 1);
    if (input.data.length !== size) {
      throw invalid(
        `input "${spec.name}" holds ${input.data.length} values; shape ${formatShape(input.shape)} needs ${size}`,
        details,
      );
    }
    const b = input.shape[0];
    if (b === undefined || b < 1) throw invalid(`input "${spec.name}" has an empty batch`, details);
    if (batch !== undefined && b !== batch) {
      throw invalid(`input "${spec.name}" has batch ${b}, another input has batch ${batch}`, details);
    }
    batch = b;
  });
}

function specs(
  tensors: readonly tf.SymbolicTensor[],
  names: readonly string[] | undefined,
  prefix: string,
): TensorSpec[] {
  const seen = new Set<string>();
  return tensors.map((t, i) => {
    const preferred = names?.[i] ?? t.sourceLayer.name;
    const name = seen.has(preferred) ? `${prefix}_${i}` : preferred;
    seen.add(name);
    const dtype = t.dtype as DType;
    return { name, shape: t.shape.map((d, k) => (k === 0 ? null : d)), dtype };
  });
}

/**
 * Serves `model` in process under `options.name`. Inputs are checked against the model
 * signature (`DINFER_ERR_TENSOR_INVALID` with the expected shape in the message); an unknown
 * model name gives `DINFER_ERR_UNKNOWN_MODEL`; an aborted signal `DINFER_ERR_ABORTED`; a
 * deadline already passed when the request starts `DINFER_ERR_TIMEOUT` (a running `predict`
 * cannot be interrupted). Intermediate tensors are disposed; the model is not.
 *
 * @throws DinferError INVALID_ARGUMENT when the name is empty or the labels do not fit the first output.
 */
export function localInferenceService(
  model: tf.LayersModel,
  options: LocalInferenceServiceOptions,
): InferenceService {
  if (typeof options.name !== 'string' || options.name.length === 0) {
    throw new DinferError(
      DinferErrorCode.INVALID_ARGUMENT,
      'localInferenceService needs a non-empty model name',
    );
  }
  const outputs = specs(model.outputs, model.outputNames, 'output');
  const labels = options.labels;
  const classes = outputs[0]?.shape.at(-1);
  if (labels !== undefined && typeof classes === 'number' && labels.length !== classes) {
    throw new DinferError(
      DinferErrorCode.INVALID_ARGUMENT,
      `${labels.length} labels given for model "${options.name}", whose first output has ${classes} classes`,
    );
  }
  const served: ServedModel = {
    name: options.name,
    version: options.version ?? '1',
    inputs: specs(model.inputs, model.inputNames, 'input'),
    outputs,
    ...(labels === undefined ? {} : { labels: [...labels] }),
  };
  const worker = options.worker ?? 'local';
  const degraded = options.degraded ?? false;

  return {
    models: () => [served],
    health: (): ServiceHealth => ({ live: true, ready: true, degraded }),
    async infer(name: string, inputs: readonly TensorData[], infer: InferOptions = {}): Promise<InferResult> {
      const started = performance.now();
      if (name !== served.name) {
        throw new DinferError(
          DinferErrorCode.UNKNOWN_MODEL,
          `unknown model "${name}"; served: "${served.name}"`,
          {
            details: { model: name, served: [served.name] },
          },
        );
      }
      checkInputs(served, inputs);
      if (infer.signal?.aborted) {
        throw new DinferError(DinferErrorCode.ABORTED, 'request aborted before it ran', {
          cause: infer.signal.reason,
        });
      }
      if (infer.deadline !== undefined && Date.now() >= infer.deadline) {
        throw new DinferError(DinferErrorCode.TIMEOUT, 'request deadline passed before it ran', {
          details: { deadline: infer.deadline },
        });
      }
      const stageStart = performance.now();
      const results = tf.tidy(() => {
        const xs = inputs.map((data, i) => {
          const tensor = toTfTensor(data);
          const want = served.inputs[i]!.dtype;
          return tensor.dtype === want ? tensor : tf.cast(tensor, want as tf.DataType);
        });
        const y = model.predict(xs.length === 1 ? xs[0]! : xs);
        return Array.isArray(y) ? y : [y];
      });
      let data: TensorData[];
      try {
        data = await Promise.all(results.map((t, i) => fromTfTensor(t, served.outputs[i]?.name)));
      } finally {
        tf.dispose(results);
      }
      const ms = performance.now() - stageStart;
      return {
        model: served.name,
        version: served.version,
        outputs: data,
        nodes: [{ stage: 0, worker, ms, retries: 0 }],
        degraded,
        processingTimeMs: performance.now() - started,
      };
    },
  };
}
