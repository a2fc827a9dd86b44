/**
 * `POST /api/infer`: the simple API. One nested array, or one image, in; top-5 classes per
 * example out.
 *
 * ```
 * {"input": [[[r,g,b], ...]], "model"?: "resnet50"}
 * or an image: body image/png | image/jpeg | image/webp | application/octet-stream, or
 *   multipart/form-data with a file field "image" (else the first file); ?model=resnet50
 * -> {"model","version","predictions":[{"top":[{"index","label"?,"score"}]}],
 *     "outputShape","processingTimeMs","nodes":[{"stage","worker","ms"}],"degraded"}
 * ```
 *
 * @module
 */
import {
  DinferError,
  DinferErrorCode,
  type InferenceService,
  type InferResult,
  type ServedModel,
} from '@dinfer/core';
import type { FastifyInstance, onRequestAsyncHookHandler } from 'fastify';
import { type PreprocessOption, preprocessConfigFor } from '../preprocess/config.js';
import { imageToTensor } from '../preprocess/image-to-tensor.js';
import { jsonInputDType } from './datatypes.js';
import { readImageUpload } from './image-input.js';
import { elapsedSinceArrival, inferForRequest } from './infer-for-request.js';
import { jsonValueCount } from './json-body.js';
import type { JsonLimits } from './json-limits.js';
import { readNumericArray, tensorData } from './numeric-array.js';
import { defaultServedModel, findServedModel } from './served-models.js';
import { elementCount, formatShape, shapeMatches } from './shape.js';
import { type RankedClass, topK } from './top-k.js';

/** Classes reported per example. */
export const SIMPLE_API_TOP_K = 5;

/** One stage of the trace in a simple answer. */
export interface SimpleStageTrace {
  readonly stage: number;
  readonly worker: string;
  readonly ms: number;
}

/** The answer of `POST /api/infer`. */
export interface SimpleInferResponse {
  readonly model: string;
  readonly version: string;
  /** One entry per example: the top classes of the first model output. */
  readonly predictions: readonly { readonly top: readonly RankedClass[] }[];
  /** Shape of the first model output, batch first. */
  readonly outputShape: readonly number[];
  /** Time from the request's arrival (body parsing included) to the answer, in ms. */
  readonly processingTimeMs: number;
  readonly nodes: readonly SimpleStageTrace[];
  /** True when the master computed a stage itself because no worker could. */
  readonly degraded: boolean;
  /** True when the answer came from the result cache (the cluster was skipped). */
  readonly cached: boolean;
}

const round = (ms: number) => Math.round(ms * 100) / 100;

function bad(message: string): DinferError {
  return new DinferError(DinferErrorCode.INVALID_ARGUMENT, message);
}

/** Adds a batch dimension to a single example, or takes a batch as it is; checks the model signature. */
function batchShape(shape: readonly number[], model: ServedModel): number[] {
  const spec = model.inputs[0]!.shape;
  const example = spec.slice(1);
  if (shape.length === spec.length - 1 && shapeMatches([1, ...shape], spec)) return [1, ...shape];
  if (shapeMatches(shape, spec)) {
    if (shape[0] === 0) throw bad(`input has an empty batch (shape ${formatShape(shape)})`);
    return [...shape];
  }
  const batch = `[N${example.map((d) => `,${d ?? 'null'}`).join('')}]`;
  throw bad(
    `input shape ${formatShape(shape)} does not match model input ${formatShape(spec)}: send one example ` +
      `${formatShape(example)} or a batch ${batch}`,
  );
}

/** Builds the simple answer from a service result; `elapsedMs` is the request's time so far. */
export function simpleResponse(
  model: ServedModel,
  result: InferResult,
  elapsedMs: number,
): SimpleInferResponse {
  const first = result.outputs[0];
  if (first === undefined) {
    throw new DinferError(DinferErrorCode.INTERNAL, `model "${model.name}" returned no outputs`);
  }
  const batch = first.shape[0] ?? 1;
  const per = batch > 0 ? elementCount(first.shape) / batch : 0;
  const predictions = Array.from({ length: batch }, (_, n) => ({
    top: topK(first.data, n * per, per, SIMPLE_API_TOP_K, model.labels),
  }));
  return {
    model: result.model,
    version: result.version,
    predictions,
    outputShape: [...first.shape],
    processingTimeMs: round(elapsedMs),
    nodes: result.nodes.map((n) => ({ stage: n.stage, worker: n.worker, ms: round(n.ms) })),
    degraded: result.degraded,
    cached: result.cached === true,
  };
}

/** Options of {@link registerSimpleInfer}. */
export interface SimpleInferOptions {
  /** Deadline of each inference, in ms from its arrival. */
  readonly timeoutMs?: number | undefined;
  /** Image preprocessing per model (defaults: scale 1/255, mean 0, std 1). */
  readonly preprocess?: PreprocessOption | undefined;
  /** Largest accepted image, in pixels. Default 40 megapixels. */
  readonly maxImagePixels?: number | undefined;
  /**
   * Largest accepted image relative to a fixed-size model input, in image pixels per input
   * pixel (never below one megapixel). Default 256.
   */
  readonly maxImagePixelRatio?: number | undefined;
  /** The JSON body bounds (for the default of the value bound of a body parsed elsewhere). */
  readonly jsonLimits?: JsonLimits | undefined;
  /** The rate limit hook of inference routes, if any. */
  readonly limit?: onRequestAsyncHookHandler | undefined;
}

/** The `?model=` query parameter, when given. */
function queryModel(query: unknown): string | undefined {
  const value = (query as { model?: unknown } | undefined)?.model;
  if (value !== undefined && typeof value !== 'string')
    throw bad('query parameter "model" must be given once');
  return value;
}

/**
 * Checks the image bounds of `options`.
 *
 * @throws DinferError INVALID_ARGUMENT for a `maxImagePixels` that is not a positive integer or
 *   a `maxImagePixelRatio` below 1.
 */
export function checkSimpleInferOptions(options: SimpleInferOptions): void {
  const { maxImagePixels, maxImagePixelRatio } = options;
  if (maxImagePixels !== undefined && (!Number.isSafeInteger(maxImagePixels) || maxImagePixels < 1)) {
    throw bad(`maxImagePixels ${maxImagePixels} must be a positive integer`);
  }
  if (maxImagePixelRatio !== undefined && (!Number.isFinite(maxImagePixelRatio) || maxImagePixelRatio < 1)) {
    throw bad(`maxImagePixelRatio ${maxImagePixelRatio} must be a number >= 1`);
  }
}

/**
 * Registers `POST /api/infer` on `app`.
 *
 * @throws DinferError INVALID_ARGUMENT for a `maxImagePixels` that is not a positive integer or
 *   a `maxImagePixelRatio` below 1.
 */
export function registerSimpleInfer(
  app: FastifyInstance,
  service: InferenceService,
  options: SimpleInferOptions = {},
): void {
  checkSimpleInferOptions(options);
  const { timeoutMs, maxImagePixels, maxImagePixelRatio } = options;
  const pick = (name: string | undefined) =>
    name === undefined ? defaultServedModel(service) : findServedModel(service, name);
  const onRequest = options.limit === undefined ? [] : [options.limit];
  app.post('/api/infer', { onRequest }, async (request, reply): Promise<SimpleInferResponse> => {
    const fromQuery = queryModel(request.query);
    const upload = await readImageUpload(request);
    if (upload !== undefined) {
      const model = pick(fromQuery ?? upload.fields.model);
      const { tensor } = await imageToTensor(upload.bytes, model, {
        config: preprocessConfigFor(options.preprocess, model),
        maxPixels: maxImagePixels,
        maxPixelRatio: maxImagePixelRatio,
      });
      const result = await inferForRequest(service, model.name, [tensor], request, reply, timeoutMs);
      return simpleResponse(model, result, elapsedSinceArrival(request));
    }
    const body = request.body;
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      throw bad(
        'body must be a JSON object {"input": [...], "model"?: "..."} or an image ' +
          '(image/png, image/jpeg, image/webp, or multipart/form-data with a file field "image")',
      );
    }
    const { input, model: bodyName } = body as { input?: unknown; model?: unknown };
    if (bodyName !== undefined && typeof bodyName !== 'string') throw bad('"model" must be a string');
    if (input === undefined) throw bad('body has no "input" (a nested array of numbers)');
    const model = pick(bodyName ?? fromQuery);
    if (model.inputs.length !== 1) {
      throw bad(
        `model "${model.name}" takes ${model.inputs.length} inputs; use POST /v2/models/${model.name}/infer`,
      );
    }
    const spec = model.inputs[0]!;
    const dtype = jsonInputDType(spec.dtype);
    if (dtype === undefined)
      throw bad(`model input "${spec.name}" has dtype ${spec.dtype}, which JSON cannot carry`);
    const array = readNumericArray(input, dtype, 'input', {
      maxValues: jsonValueCount(request, options.jsonLimits),
      checkShape: (claimed) => batchShape(claimed, model),
    });
    const shape = batchShape(array.shape, model);
    const tensor = tensorData(spec.name, dtype, shape, array.data);
    const result = await inferForRequest(service, model.name, [tensor], request, reply, timeoutMs);
    return simpleResponse(model, result, elapsedSinceArrival(request));
  });
}
