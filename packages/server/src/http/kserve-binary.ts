/**
 * The binary tensor data extension of the KServe v2 / Open Inference Protocol (REST).
 *
 * A binary request has `Content-Type: application/octet-stream` and the header
 * `Inference-Header-Content-Length: n`: the first n bytes are the JSON inference request,
 * the rest is the data of every input that declares `parameters.binary_data_size`, one after
 * the other in the order of `inputs`, row-major, little-endian, without padding (`BOOL` one
 * byte per element, 0 or 1). Without the header the whole body is the JSON request.
 *
 * An answer carries outputs as binary data when the request sets
 * `parameters.binary_data_output: true` or an output's `parameters.binary_data: true` (the
 * latter wins): such outputs have `parameters.binary_data_size` instead of `data`, their
 * bytes follow the JSON in output order, and the answer is `application/octet-stream` with
 * `Inference-Header-Content-Length` set.
 *
 * @module
 */
import { endianness } from 'node:os';
import { DinferError, DinferErrorCode, type TensorArray, type TensorDType } from '@dinfer/core';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { jsonValueCount } from './json-body.js';
import { type JsonLimits, scanJson } from './json-limits.js';

/** The header (lower case, as node reports it) giving the JSON part's length in bytes. */
export const INFERENCE_HEADER_CONTENT_LENGTH = 'inference-header-content-length';

/** Content type of binary requests and answers. */
export const BINARY_CONTENT_TYPE = 'application/octet-stream';

/** The name `GET /v2` lists the extension under. */
export const BINARY_TENSOR_DATA_EXTENSION = 'binary_tensor_data';

const LITTLE_ENDIAN_HOST = endianness() === 'LE';

function bad(message: string, details: Record<string, unknown> = {}): DinferError {
  return new DinferError(DinferErrorCode.INVALID_ARGUMENT, message, { details });
}

/** Bytes of one element of `dtype` in binary data. */
export function bytesPerElement(dtype: TensorDType): number {
  return dtype === 'float32' || dtype === 'int32' ? 4 : 1;
}

/**
 * Hands out the binary part of a request, tensor by tensor, and checks that every byte is
 * claimed exactly once.
 */
export interface BinaryDataReader {
  /** Bytes not yet taken. */
  readonly remaining: number;
  /**
   * The next `size` bytes.
   *
   * @param where names the tensor in messages, e.g. `inputs[0]`.
   * @throws DinferError INVALID_ARGUMENT when fewer than `size` bytes remain.
   */
  take(size: number, where: string): Uint8Array;
  /**
   * Checks that every byte was taken.
   *
   * @throws DinferError INVALID_ARGUMENT when bytes are left over.
   */
  finish(): void;
}

/** A {@link BinaryDataReader} over `bytes`, the part of a body after an `headerLength`-byte header. */
export function binaryDataReader(bytes: Uint8Array, headerLength: number): BinaryDataReader {
  let offset = 0;
  return {
    get remaining() {
      return bytes.length - offset;
    },
    take(size, where) {
      const left = bytes.length - offset;
      if (size > left) {
        throw bad(
          `${where} declares binary_data_size ${size}, but only ${left} bytes of binary data remain ` +
            `(the body has ${bytes.length} bytes after the ${headerLength}-byte inference header)`,
          { size, remaining: left },
        );
      }
      const chunk = bytes.subarray(offset, offset + size);
      offset += size;
      return chunk;
    },
    finish() {
      const left = bytes.length - offset;
      if (left !== 0) {
        throw bad(
          `the body has ${left} bytes of binary data beyond the inputs' binary_data_size total of ${offset} ` +
            `(Inference-Header-Content-Length ${headerLength})`,
          { extra: left },
        );
      }
    },
  };
}

/** A v2 request body as the route sees it: the JSON, and the binary data when there is some. */
export interface V2RequestBody {
  readonly json: unknown;
  readonly binary?: BinaryDataReader | undefined;
  /** The most values the JSON holds (see {@link scanJson}), which bounds its `data` arrays. */
  readonly jsonValues?: number | undefined;
}

/**
 * Splits a binary request body at `Inference-Header-Content-Length` and parses its JSON part.
 *
 * @param header the header's value as node gives it (`undefined` when absent: the whole body
 *   is JSON).
 * @throws DinferError INVALID_ARGUMENT for a header that is not one non-negative integer, is
 *   larger than the body, or a JSON part that does not parse or is over `limits`.
 */
export function splitBinaryBody(
  body: Uint8Array,
  header: string | string[] | undefined,
  limits: JsonLimits = {},
): V2RequestBody {
  if (Array.isArray(header)) throw bad('Inference-Header-Content-Length is given more than once');
  let headerLength = body.length;
  if (header !== undefined) {
    if (!/^\s*\d{1,15}\s*$/.test(header)) {
      throw bad(`Inference-Header-Content-Length "${header}" must be a non-negative integer`);
    }
    headerLength = Number(header);
    if (headerLength > body.length) {
      throw bad(
        `Inference-Header-Content-Length ${headerLength} is larger than the body (${body.length} bytes)`,
        { headerLength, bodyLength: body.length },
      );
    }
  }
  if (headerLength === 0) throw bad('the inference header is empty (Inference-Header-Content-Length 0)');
  const head = body.subarray(0, headerLength);
  const jsonValues = scanJson(head, limits, `the inference header (the first ${headerLength} bytes)`);
  const text = Buffer.from(head.buffer, head.byteOffset, head.byteLength).toString('utf8');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw bad(
      `the inference header (the first ${headerLength} bytes) is not valid JSON: ${(error as Error).message}`,
      { headerLength },
    );
  }
  return { json, binary: binaryDataReader(body.subarray(headerLength), headerLength), jsonValues };
}

/**
 * Reads `count` elements of `dtype` from little-endian `bytes` (whose length the caller
 * checked): `FP32` and `INT32` as a view of `bytes` when they are 4-byte aligned on a
 * little-endian host (no copy; the body parser aligns them), else as a new aligned array.
 *
 * @throws DinferError INVALID_ARGUMENT for a `BOOL` byte other than 0 or 1.
 */
export function readBinaryTensor(
  bytes: Uint8Array,
  dtype: TensorDType,
  count: number,
  where: string,
): TensorArray {
  switch (dtype) {
    case 'uint8':
      return bytes.slice(0, count);
    case 'bool': {
      const out = bytes.slice(0, count);
      const at = out.findIndex((b) => b > 1);
      if (at >= 0)
        throw bad(`${where}: BOOL element ${at} is the byte ${out[at]}; BOOL bytes must be 0 or 1`);
      return out;
    }
    case 'float32':
    case 'int32': {
      if (LITTLE_ENDIAN_HOST && bytes.byteOffset % 4 === 0) {
        return dtype === 'float32'
          ? new Float32Array(bytes.buffer, bytes.byteOffset, count)
          : new Int32Array(bytes.buffer, bytes.byteOffset, count);
      }
      const out = dtype === 'float32' ? new Float32Array(count) : new Int32Array(count);
      if (LITTLE_ENDIAN_HOST) {
        new Uint8Array(out.buffer).set(bytes.subarray(0, count * 4));
      } else {
        const view = new DataView(bytes.buffer, bytes.byteOffset, count * 4);
        for (let i = 0; i < count; i++) {
          out[i] = dtype === 'float32' ? view.getFloat32(i * 4, true) : view.getInt32(i * 4, true);
        }
      }
      return out;
    }
  }
}

/** The little-endian bytes of a tensor's values (a view, no copy, on little-endian hosts). */
export function tensorBytes(data: TensorArray): Uint8Array {
  if (LITTLE_ENDIAN_HOST || data.BYTES_PER_ELEMENT === 1) {
    return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  }
  const out = new Uint8Array(data.byteLength);
  const view = new DataView(out.buffer);
  for (let i = 0; i < data.length; i++) {
    if (data instanceof Float32Array) view.setFloat32(i * 4, data[i]!, true);
    else view.setInt32(i * 4, data[i]!, true);
  }
  return out;
}

/** A binary answer: JSON header then the output bytes. */
export interface BinaryAnswer {
  readonly body: Buffer;
  /** Length of the JSON part, for `Inference-Header-Content-Length`. */
  readonly headerLength: number;
}

/** Concatenates the JSON `response` and the `chunks` of its binary outputs. */
export function encodeBinaryAnswer(response: unknown, chunks: readonly Uint8Array[]): BinaryAnswer {
  const header = Buffer.from(JSON.stringify(response), 'utf8');
  return { body: Buffer.concat([header, ...chunks]), headerLength: header.length };
}

/**
 * The body of a v2 inference request: JSON as fastify parsed it, or a binary body split at
 * its header.
 */
export function readV2Body(request: FastifyRequest, limits: JsonLimits = {}): V2RequestBody {
  const body = request.body;
  if (body instanceof Uint8Array)
    return splitBinaryBody(body, request.headers[INFERENCE_HEADER_CONTENT_LENGTH], limits);
  return { json: body, jsonValues: jsonValueCount(request, limits) };
}

/** Sends a v2 answer: JSON, or binary when `chunks` holds output bytes. */
export function sendV2Answer(reply: FastifyReply, response: unknown, chunks: readonly Uint8Array[]) {
  if (chunks.length === 0) return reply.send(response);
  const answer = encodeBinaryAnswer(response, chunks);
  return reply
    .header(INFERENCE_HEADER_CONTENT_LENGTH, String(answer.headerLength))
    .type(BINARY_CONTENT_TYPE)
    .send(answer.body);
}

/**
 * `onRequest` hook of the v2 infer routes: a body split by `Inference-Header-Content-Length`
 * must be `application/octet-stream` (a JSON parser would choke on the binary tail with an
 * unhelpful message).
 */
export async function requireOctetStreamForBinary(request: FastifyRequest): Promise<void> {
  const header = request.headers[INFERENCE_HEADER_CONTENT_LENGTH];
  if (header === undefined) return;
  const type = (request.headers['content-type'] ?? '').split(';', 1)[0]!.trim().toLowerCase();
  if (type === BINARY_CONTENT_TYPE) return;
  const length = request.headers['content-length'];
  if (typeof header === 'string' && length !== undefined && header.trim() === length.trim()) return;
  throw bad(
    `a body with Inference-Header-Content-Length ${String(header)} carries binary data and needs ` +
      `Content-Type: ${BINARY_CONTENT_TYPE} (got "${type || 'none'}")`,
  );
}
