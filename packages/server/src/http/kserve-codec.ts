/**
 * The JSON bodies of the KServe v2 / Open Inference Protocol: checking an inference request
 * against a model signature, and building inference answers and model metadata. Tensors come
 * as JSON `data` or, with the binary tensor data extension (kserve-binary.ts), as
 * `parameters.binary_data_size` bytes after the JSON.
 *
 * @module
 */
import {
  DinferError,
  DinferErrorCode,
  type InferResult,
  type ServedModel,
  type TensorData,
} from '@dinfer/core';
import {
  datatypeToDType,
  dtypeFeeds,
  dtypeToDatatype,
  KSERVE_DATATYPES,
  SUPPORTED_KSERVE_DATATYPES,
} from './datatypes.js';
import { type BinaryDataReader, bytesPerElement, readBinaryTensor, tensorBytes } from './kserve-binary.js';
import { MAX_JSON_TENSOR_RANK, readNumericArray, tensorData } from './numeric-array.js';
import { elementCount, formatShape, shapeMatches } from './shape.js';

/** One tensor of a v2 answer: `data` as JSON, or `parameters.binary_data_size` bytes after it. */
export interface V2OutputTensor {
  readonly name: string;
  readonly shape: readonly number[];
  readonly datatype: string;
  /** Row-major, flattened; booleans for `BOOL`. Absent for a binary output. */
  readonly data?: readonly number[] | readonly boolean[];
  /** Set for a binary output: its size in bytes in the binary part of the answer. */
  readonly parameters?: { readonly binary_data_size: number };
}

/** The answer of `POST /v2/models/:name/infer`. */
export interface V2InferResponse {
  readonly model_name: string;
  readonly model_version: string;
  readonly id?: string;
  /** `cached` is present (true) when the answer came from the result cache. */
  readonly parameters: {
    readonly degraded: boolean;
    readonly processing_time_ms: number;
    readonly cached?: boolean;
  };
  readonly outputs: readonly V2OutputTensor[];
}

/** A checked v2 request: inputs in model input order, and the requested output names. */
export interface V2ParsedRequest {
  readonly id?: string;
  readonly inputs: TensorData[];
  /** Output names to return; `undefined` means all. */
  readonly outputs?: readonly string[];
  /** Outputs to return as binary data (binary tensor data extension). */
  readonly binaryOutputs: ReadonlySet<string>;
}

/** A v2 answer: the JSON body, and the bytes of its binary outputs in output order. */
export interface V2Answer {
  readonly response: V2InferResponse;
  /** Empty when every output is JSON. */
  readonly binary: readonly Uint8Array[];
}

/** Model metadata as the protocol describes it (`-1` for free dimensions). */
export interface V2ModelMetadata {
  readonly name: string;
  readonly versions: readonly string[];
  readonly platform: string;
  readonly inputs: readonly { name: string; datatype: string; shape: number[] }[];
  readonly outputs: readonly { name: string; datatype: string; shape: number[] }[];
}

function bad(message: string): DinferError {
  return new DinferError(DinferErrorCode.INVALID_ARGUMENT, message);
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

function names(list: readonly { name: string }[]): string {
  return `[${list.map((t) => `"${t.name}"`).join(', ')}]`;
}

function readShape(value: unknown, where: string): number[] {
  if (!Array.isArray(value) || value.length > MAX_JSON_TENSOR_RANK) {
    throw bad(`${where}.shape must be an array of at most ${MAX_JSON_TENSOR_RANK} dimensions`);
  }
  for (const d of value) {
    if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) {
      throw bad(`${where}.shape ${JSON.stringify(value)} must hold non-negative integers`);
    }
  }
  return value as number[];
}

/** Reads one request input against its model input. */
function readInput(
  raw: Record<string, unknown>,
  where: string,
  model: ServedModel,
  specIndex: number,
  binary: BinaryDataReader | undefined,
  maxValues: number | undefined,
): TensorData {
  const spec = model.inputs[specIndex]!;
  const datatype = raw.datatype;
  if (typeof datatype !== 'string') throw bad(`${where}.datatype must be a string such as "FP32"`);
  if (!KSERVE_DATATYPES.includes(datatype)) {
    throw bad(`${where}.datatype "${datatype}" is not a protocol datatype (${KSERVE_DATATYPES.join(', ')})`);
  }
  const dtype = datatypeToDType(datatype);
  if (dtype === undefined) {
    throw bad(
      `${where}.datatype ${datatype} is not supported; use one of ${SUPPORTED_KSERVE_DATATYPES.join(', ')}`,
    );
  }
  if (!dtypeFeeds(spec.dtype, dtype)) {
    throw bad(
      `input "${spec.name}" has datatype ${datatype}; the model expects ${dtypeToDatatype(spec.dtype)}`,
    );
  }
  const shape = readShape(raw.shape, where);
  if (raw.parameters !== undefined && !isObject(raw.parameters))
    throw bad(`${where}.parameters must be an object`);
  if (!shapeMatches(shape, spec.shape)) {
    throw bad(
      `input "${spec.name}" shape ${formatShape(shape)} does not match model input ${formatShape(spec.shape)}`,
    );
  }
  if (shape[0] === 0) throw bad(`input "${spec.name}" has an empty batch (shape ${formatShape(shape)})`);
  const binarySize = isObject(raw.parameters) ? raw.parameters.binary_data_size : undefined;
  if (binarySize !== undefined) {
    return readBinaryInput(raw, where, spec.name, dtype, datatype, shape, binarySize, binary);
  }
  if (raw.data === undefined) throw bad(`${where}.data is missing`);
  const size = elementCount(shape);
  // The data's shape is checked against the declared one before anything is allocated.
  const checkShape = (claimed: readonly number[]) => {
    const flatFits = claimed.length === 1 && claimed[0] === size;
    const nestedFits = claimed.length === shape.length && claimed.every((d, i) => d === shape[i]);
    if (!flatFits && !nestedFits) {
      throw bad(
        `${where}.data has shape ${formatShape(claimed)} (${elementCount(claimed)} values); ` +
          `shape ${formatShape(shape)} needs ${size} values, flat or nested`,
      );
    }
  };
  const array = readNumericArray(raw.data, dtype, `${where}.data`, { maxValues, checkShape });
  return tensorData(spec.name, dtype, shape, array.data);
}

/** Reads an input whose data is `binary_data_size` bytes of the binary part. */
function readBinaryInput(
  raw: Record<string, unknown>,
  where: string,
  name: string,
  dtype: TensorData['dtype'],
  datatype: string,
  shape: number[],
  size: unknown,
  binary: BinaryDataReader | undefined,
): TensorData {
  if (binary === undefined) {
    throw bad(
      `${where}.parameters.binary_data_size: the binary tensor data extension needs ` +
        'Content-Type application/octet-stream and the Inference-Header-Content-Length header',
    );
  }
  if (raw.data !== undefined) throw bad(`${where} has both "data" and parameters.binary_data_size; send one`);
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
    throw bad(`${where}.parameters.binary_data_size ${JSON.stringify(size)} must be a non-negative integer`);
  }
  const count = elementCount(shape);
  const expected = count * bytesPerElement(dtype);
  if (size !== expected) {
    throw new DinferError(
      DinferErrorCode.INVALID_ARGUMENT,
      `${where}.parameters.binary_data_size ${size} does not match shape ${formatShape(shape)} of ${datatype}: ` +
        `${count} elements x ${bytesPerElement(dtype)} bytes = ${expected} bytes`,
      { details: { size, expected } },
    );
  }
  const data = readBinaryTensor(binary.take(size, where), dtype, count, where);
  return { name, dtype, shape, data } as TensorData;
}

/** Reads an optional boolean parameter. */
function readFlag(parameters: unknown, key: string, where: string): boolean | undefined {
  if (parameters === undefined) return undefined;
  if (!isObject(parameters)) throw bad(`${where}.parameters must be an object`);
  const value = parameters[key];
  if (value !== undefined && typeof value !== 'boolean')
    throw bad(`${where}.parameters.${key} must be a boolean`);
  return value;
}

/**
 * Checks a v2 inference request body against `model`: every model input given once by name,
 * datatype and shape matching the signature, data matching the shape, one batch size. With
 * `binary` (a binary request), inputs with `parameters.binary_data_size` take their bytes from
 * it in request order, and every byte of it must be claimed. `maxValues` (the values the JSON
 * holds at most, see `jsonValueCount`) bounds the JSON `data` arrays before they are read.
 *
 * @throws DinferError INVALID_ARGUMENT with a message that says what was expected.
 */
export function parseV2Request(
  body: unknown,
  model: ServedModel,
  binary?: BinaryDataReader,
  maxValues?: number,
): V2ParsedRequest {
  if (!isObject(body)) throw bad('body must be a JSON object {"inputs": [...]}');
  const { id, inputs, outputs } = body;
  const binaryDefault = readFlag(body.parameters, 'binary_data_output', 'request') ?? false;
  if (id !== undefined && typeof id !== 'string') throw bad('"id" must be a string');
  if (!Array.isArray(inputs) || inputs.length === 0) throw bad('"inputs" must be a non-empty array');
  const byIndex = new Array<TensorData | undefined>(model.inputs.length);
  inputs.forEach((raw, i) => {
    const where = `inputs[${i}]`;
    if (!isObject(raw)) throw bad(`${where} must be an object {name, shape, datatype, data}`);
    if (typeof raw.name !== 'string') throw bad(`${where}.name must be a string`);
    const k = model.inputs.findIndex((s) => s.name === raw.name);
    if (k < 0)
      throw bad(`unknown input "${raw.name}"; model "${model.name}" expects inputs ${names(model.inputs)}`);
    if (byIndex[k] !== undefined) throw bad(`input "${raw.name}" is given twice`);
    byIndex[k] = readInput(raw, where, model, k, binary, maxValues);
  });
  binary?.finish();
  const missing = model.inputs.filter((_, k) => byIndex[k] === undefined);
  if (missing.length > 0) {
    throw bad(
      `missing input(s) ${names(missing)}; model "${model.name}" expects inputs ${names(model.inputs)}`,
    );
  }
  const tensors = byIndex as TensorData[];
  const batch = tensors[0]!.shape[0];
  for (const t of tensors) {
    if (t.shape[0] !== batch) throw bad(`inputs disagree on the batch size (${batch} and ${t.shape[0]})`);
  }
  let requested: string[] | undefined;
  const binaryOutputs = new Set<string>();
  if (outputs !== undefined) {
    if (!Array.isArray(outputs)) throw bad('"outputs" must be an array of {name}');
    requested = outputs.map((o, i) => {
      if (!isObject(o) || typeof o.name !== 'string') throw bad(`outputs[${i}].name must be a string`);
      if (!model.outputs.some((s) => s.name === o.name)) {
        throw bad(`unknown output "${o.name}"; model "${model.name}" has outputs ${names(model.outputs)}`);
      }
      if (readFlag(o.parameters, 'binary_data', `outputs[${i}]`) ?? binaryDefault) binaryOutputs.add(o.name);
      return o.name;
    });
  } else if (binaryDefault) {
    for (const spec of model.outputs) binaryOutputs.add(spec.name);
  }
  return {
    ...(id === undefined ? {} : { id }),
    inputs: tensors,
    ...(requested === undefined ? {} : { outputs: requested }),
    binaryOutputs,
  };
}

/**
 * Builds the v2 answer: the requested outputs (all by default), data flattened as JSON, or
 * as little-endian bytes for the outputs in `request.binaryOutputs`.
 */
export function v2Response(model: ServedModel, request: V2ParsedRequest, result: InferResult): V2Answer {
  const binary: Uint8Array[] = [];
  const selected = model.outputs
    .map((spec, i) => ({ spec, tensor: result.outputs[i] }))
    .filter(({ spec }) => request.outputs === undefined || request.outputs.includes(spec.name));
  const outputs = selected.map(({ spec, tensor }) => {
    if (tensor === undefined) {
      throw new DinferError(
        DinferErrorCode.INTERNAL,
        `model "${model.name}" returned no tensor for output "${spec.name}"`,
      );
    }
    const head = { name: spec.name, shape: [...tensor.shape], datatype: dtypeToDatatype(tensor.dtype) };
    if (request.binaryOutputs.has(spec.name)) {
      const bytes = tensorBytes(tensor.data);
      binary.push(bytes);
      return { ...head, parameters: { binary_data_size: bytes.length } };
    }
    const data = tensor.dtype === 'bool' ? Array.from(tensor.data, (v) => v !== 0) : Array.from(tensor.data);
    return { ...head, data };
  });
  const response: V2InferResponse = {
    model_name: result.model,
    model_version: result.version,
    ...(request.id === undefined ? {} : { id: request.id }),
    parameters: {
      degraded: result.degraded,
      processing_time_ms: Math.round(result.processingTimeMs * 100) / 100,
      ...(result.cached ? { cached: true } : {}),
    },
    outputs,
  };
  return { response, binary };
}

/** Model metadata in protocol form. */
export function v2ModelMetadata(model: ServedModel): V2ModelMetadata {
  const tensor = (s: ServedModel['inputs'][number]) => ({
    name: s.name,
    datatype: dtypeToDatatype(s.dtype),
    shape: s.shape.map((d) => d ?? -1),
  });
  return {
    name: model.name,
    versions: [model.version],
    platform: 'tensorflowjs_layers',
    inputs: model.inputs.map(tensor),
    outputs: model.outputs.map(tensor),
  };
}
