/**
 * Reads TF.js layers-model artifacts over HTTP(S) with the global `fetch`: `model.json`, then
 * each weight shard resolved relative to it. Bodies are read as streams and cut off at
 * `maxBytes`, so a lying or missing `Content-Length` cannot make us buffer more.
 *
 * @module
 */
import type * as tf from '@tensorflow/tfjs';
import { DinferError, DinferErrorCode } from '../errors.js';
import {
  artifactsFromJson,
  checkMaxBytes,
  checkWeightBytes,
  parseModelJson,
  type ReadModelOptions,
  throwIfAborted,
} from './artifacts.js';

/** True for `http://` and `https://` sources. */
export function isHttpSource(source: string): boolean {
  return /^https?:\/\//i.test(source);
}

async function fetchBytes(url: string, signal: AbortSignal | undefined, budget: number): Promise<Uint8Array> {
  let response: Response;
  try {
    response = await fetch(url, signal ? { signal } : {});
  } catch (error) {
    if (signal?.aborted) {
      throw new DinferError(DinferErrorCode.ABORTED, `fetching ${url} was aborted`, {
        details: { path: url },
        cause: error,
      });
    }
    throw new DinferError(DinferErrorCode.MODEL_IO, `fetching ${url} failed: ${(error as Error).message}`, {
      details: { path: url },
      cause: error,
    });
  }
  if (response.status === 404 || response.status === 410) {
    await response.body?.cancel();
    throw new DinferError(
      DinferErrorCode.MODEL_NOT_FOUND,
      `model file not found: ${url} (HTTP ${response.status})`,
      {
        details: { path: url, status: response.status },
      },
    );
  }
  if (!response.ok) {
    await response.body?.cancel();
    throw new DinferError(DinferErrorCode.MODEL_IO, `fetching ${url} failed: HTTP ${response.status}`, {
      details: { path: url, status: response.status },
    });
  }
  const declared = Number(response.headers.get('content-length') ?? Number.NaN);
  if (Number.isFinite(declared) && declared > budget) {
    await response.body?.cancel();
    checkMaxBytes(declared, budget, url);
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    if (response.body) {
      const reader = response.body.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        size += value.byteLength;
        if (size > budget) {
          await reader.cancel();
          checkMaxBytes(size, budget, url);
        }
        chunks.push(value);
      }
    }
  } catch (error) {
    if (error instanceof DinferError) throw error;
    if (signal?.aborted) {
      throw new DinferError(DinferErrorCode.ABORTED, `fetching ${url} was aborted`, {
        details: { path: url },
        cause: error,
      });
    }
    throw new DinferError(DinferErrorCode.MODEL_IO, `reading ${url} failed: ${(error as Error).message}`, {
      details: { path: url },
      cause: error,
    });
  }
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return bytes;
}

/**
 * Fetches `model.json` at `url` and its weight shards into ModelArtifacts, with the same
 * checks as the file system reader.
 *
 * @throws DinferError MODEL_NOT_FOUND (HTTP 404/410), MODEL_CORRUPT, MODEL_UNSUPPORTED,
 *   MODEL_IO (network failure, other HTTP status, over `maxBytes`), ABORTED.
 */
export async function readArtifactsFromHttp(
  url: string,
  options: ReadModelOptions = {},
): Promise<tf.io.ModelArtifacts> {
  const { signal } = options;
  const limit = options.maxBytes ?? Number.POSITIVE_INFINITY;
  throwIfAborted(signal, url);
  const jsonBytes = await fetchBytes(url, signal, limit);
  const json = parseModelJson(new TextDecoder().decode(jsonBytes), url);
  let used = jsonBytes.byteLength;
  const groupBytes: number[] = [];
  const parts: Uint8Array[] = [];
  for (const group of json.weightsManifest) {
    let bytes = 0;
    for (const path of group.paths) {
      const shardUrl = new URL(path, url).toString();
      throwIfAborted(signal, shardUrl);
      const part = await fetchBytes(shardUrl, signal, limit - used);
      used += part.byteLength;
      bytes += part.byteLength;
      parts.push(part);
    }
    groupBytes.push(bytes);
  }
  checkWeightBytes(json, groupBytes, url);
  const weightData = new Uint8Array(groupBytes.reduce((a, b) => a + b, 0));
  let offset = 0;
  for (const part of parts) {
    weightData.set(part, offset);
    offset += part.byteLength;
  }
  return artifactsFromJson(json, weightData.buffer);
}
