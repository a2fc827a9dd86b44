/**
 * `application/octet-stream` request bodies (binary KServe v2 requests, raw images), read
 * into one buffer from core's frame buffer pool and given back to it once the request has
 * been answered with success.
 *
 * A 600 KB ResNet50 input read the usual way (chunks joined into a fresh Buffer, then its
 * tensor copied out for alignment) makes two new buffers per request that live until the
 * answer; on a master that waits on its workers that was enough to run a full mark-compact
 * every few requests, about three quarters of the master's CPU per request. Here the body is
 * written straight into a pooled buffer, placed so that the binary part after an
 * `Inference-Header-Content-Length` header starts 8-byte aligned (its float32 tensors are
 * then read without a copy, see `readBinaryTensor`), and reused by a later request.
 *
 * @module
 */
import { allocateFrameBody, releaseAttachments } from '@dinfer/core';
import { errorCodes, type FastifyInstance, type FastifyRequest } from 'fastify';
import { BINARY_CONTENT_TYPE, INFERENCE_HEADER_CONTENT_LENGTH } from './kserve-binary.js';

/** Bytes in front of the body so that the binary part after `header` bytes is 8-byte aligned. */
function alignmentPad(request: FastifyRequest): number {
  const header = Number(request.headers[INFERENCE_HEADER_CONTENT_LENGTH]);
  return Number.isSafeInteger(header) && header > 0 ? (8 - (header % 8)) % 8 : 0;
}

/**
 * Makes fastify hand `application/octet-stream` bodies over as a Buffer, up to `bodyLimit`
 * bytes (413 above, 400 when the body does not match its `Content-Length`). The buffer goes
 * back to the pool after a 2xx answer: a handler must not keep the body, or views of it,
 * beyond its request (an answer that fails leaves the buffer to the GC).
 */
export function registerOctetStreamBody(app: FastifyInstance, bodyLimit: number): void {
  const pooled = new WeakMap<FastifyRequest, Uint8Array>();
  app.addContentTypeParser(BINARY_CONTENT_TYPE, { bodyLimit }, (request, payload, done) => {
    const declared = Number(request.headers['content-length']);
    const known = request.headers['content-length'] !== undefined && Number.isSafeInteger(declared);
    if (known && declared > bodyLimit) {
      done(new errorCodes.FST_ERR_CTP_BODY_TOO_LARGE(), undefined);
      return;
    }
    const pad = alignmentPad(request);
    // Without a Content-Length the chunks are kept and joined once at the end.
    const whole = known ? allocateFrameBody(pad + declared) : undefined;
    const chunks: Buffer[] = [];
    let received = 0;
    const finish = (error: Error | undefined, body?: Buffer): void => {
      payload.removeListener('data', onData);
      payload.removeListener('end', onEnd);
      payload.removeListener('error', onError);
      done(error ?? null, body);
    };
    const onData = (chunk: Buffer): void => {
      if (received + chunk.length > (known ? declared : bodyLimit)) {
        finish(
          known
            ? new errorCodes.FST_ERR_CTP_INVALID_CONTENT_LENGTH()
            : new errorCodes.FST_ERR_CTP_BODY_TOO_LARGE(),
        );
        return;
      }
      // Copied at once: a chunk may be a view of the socket's read buffer.
      if (whole !== undefined) whole.set(chunk, pad + received);
      else chunks.push(Buffer.from(chunk));
      received += chunk.length;
    };
    const onEnd = (): void => {
      if (known && received !== declared) {
        finish(new errorCodes.FST_ERR_CTP_INVALID_CONTENT_LENGTH());
        return;
      }
      let target = whole;
      if (target === undefined) {
        target = allocateFrameBody(pad + received);
        let offset = pad;
        for (const chunk of chunks) {
          target.set(chunk, offset);
          offset += chunk.length;
        }
      }
      pooled.set(request, target);
      finish(undefined, Buffer.from(target.buffer, target.byteOffset + pad, received));
    };
    const onError = (error: Error & { statusCode?: number }): void => {
      if (!(typeof error.statusCode === 'number' && error.statusCode >= 400)) error.statusCode = 400;
      finish(error);
    };
    payload.on('data', onData);
    payload.on('end', onEnd);
    payload.on('error', onError);
  });
  app.addHook('onResponse', async (request, reply) => {
    const body = pooled.get(request);
    if (body === undefined) return;
    pooled.delete(request);
    if (reply.statusCode >= 200 && reply.statusCode < 300) releaseAttachments([body]);
  });
}
