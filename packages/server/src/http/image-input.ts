/**
 * Image uploads to `POST /api/infer`: the body parsers for raw images (`image/png`,
 * `image/jpeg`, `image/webp`; `application/octet-stream` arrives the same way, see
 * kserve-binary.ts) and `multipart/form-data`, and reading the one image of a request.
 *
 * @module
 */

import { DinferError, DinferErrorCode } from '@dinfer/core';
import multipart from '@fastify/multipart';
import type { FastifyInstance, FastifyRequest } from 'fastify';

/** Content types of a raw image body. */
export const IMAGE_CONTENT_TYPES: readonly string[] = ['image/png', 'image/jpeg', 'image/webp'];

/** The multipart file field an image is looked for first; else the first file part is used. */
export const IMAGE_FORM_FIELD = 'image';

/** Limits on the non-file parts of a multipart upload. */
const MULTIPART_LIMITS = { fields: 16, fieldSize: 64 * 1024, files: 8, parts: 32, headerPairs: 200 };

/** One uploaded image and the form fields that came with it. */
export interface ImageUpload {
  /** The encoded image (format not yet checked). */
  readonly bytes: Buffer;
  /** Text fields of a multipart upload (e.g. `model`); empty for a raw body. */
  readonly fields: Readonly<Record<string, string>>;
}

function bad(message: string): DinferError {
  return new DinferError(DinferErrorCode.INVALID_ARGUMENT, message);
}

/**
 * Registers the body parsers for image uploads on `app`: raw image bodies become a Buffer
 * (up to `bodyLimit` bytes), `multipart/form-data` is streamed by `@fastify/multipart` with
 * each file capped at `bodyLimit` bytes.
 */
export function registerImageInput(app: FastifyInstance, bodyLimit: number): void {
  app.addContentTypeParser(
    [...IMAGE_CONTENT_TYPES],
    { parseAs: 'buffer', bodyLimit },
    (_request, body, done) => {
      done(null, body);
    },
  );
  app.register(multipart, { limits: { ...MULTIPART_LIMITS, fileSize: bodyLimit } });
}

function mediaType(request: FastifyRequest): string {
  return (request.headers['content-type'] ?? '').split(';', 1)[0]!.trim().toLowerCase();
}

/**
 * Reads a multipart upload, turning the parser's own failures on a malformed body (busboy's
 * "Unexpected end of multipart data", "Boundary not found": plain errors without a status,
 * which would answer 500) into 400; errors with a 4xx status (413 file too large) pass through.
 */
async function readMultipart(request: FastifyRequest): Promise<ImageUpload> {
  try {
    return await readMultipartParts(request);
  } catch (error) {
    const status = (error as { statusCode?: unknown }).statusCode;
    if (error instanceof DinferError || (typeof status === 'number' && status >= 400 && status < 500))
      throw error;
    throw new DinferError(
      DinferErrorCode.INVALID_ARGUMENT,
      `malformed multipart/form-data body: ${error instanceof Error ? error.message : String(error)}`,
      { cause: error },
    );
  }
}

/** Reads a multipart upload: the file field `image`, or else the first file part. */
async function readMultipartParts(request: FastifyRequest): Promise<ImageUpload> {
  const fields: Record<string, string> = {};
  let named: Buffer | undefined;
  let first: Buffer | undefined;
  for await (const part of request.parts()) {
    if (part.type === 'field') {
      if (typeof part.value === 'string') fields[part.fieldname] = part.value;
      continue;
    }
    if (part.fieldname === IMAGE_FORM_FIELD) {
      if (named !== undefined) throw bad(`multipart body has more than one "${IMAGE_FORM_FIELD}" file`);
      named = await part.toBuffer();
    } else if (first === undefined && named === undefined) {
      first = await part.toBuffer();
    } else {
      for await (const _ of part.file) {
        // drain a file that is not used
      }
    }
  }
  const bytes = named ?? first;
  if (bytes === undefined) {
    throw bad(`multipart body has no file part; send the image as the file field "${IMAGE_FORM_FIELD}"`);
  }
  return { bytes, fields };
}

/**
 * The image of `request` when it uploads one: a raw image or octet-stream body, or a
 * multipart form. `undefined` for any other body (JSON).
 *
 * @throws DinferError INVALID_ARGUMENT for an image upload without bytes or without a file
 *   part; multipart limit errors (413 for a file over the body limit) pass through.
 */
export async function readImageUpload(request: FastifyRequest): Promise<ImageUpload | undefined> {
  const body = request.body;
  if (Buffer.isBuffer(body)) return { bytes: body, fields: {} };
  const type = mediaType(request);
  if (IMAGE_CONTENT_TYPES.includes(type) || type === 'application/octet-stream') {
    return { bytes: Buffer.alloc(0), fields: {} };
  }
  if (typeof request.isMultipart === 'function' && request.isMultipart()) return readMultipart(request);
  return undefined;
}
