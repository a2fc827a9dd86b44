/**
 * The Node.js {@link Platform}: native zlib and SHA-256, `setImmediate`, `process` usage and
 * `node:fs`. Selected by the `node`
 * condition of the `#platform` import.
 *
 * @module
 */
import { createHash } from 'node:crypto';
import { availableParallelism, hostname, totalmem } from 'node:os';
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import { nodeFileAccess } from './node-files.js';
import type { Platform } from './platform.js';

/** The host facilities of Node.js. */
export const platform: Platform = {
  deflateRaw(data, level) {
    const out = deflateRawSync(data, { level });
    return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
  },
  inflateRaw(data, maxBytes) {
    const out = inflateRawSync(data, { maxOutputLength: Math.max(1, maxBytes) });
    return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
  },
  sha256Hex(parts) {
    const hash = createHash('sha256');
    for (const part of parts) hash.update(part);
    return hash.digest('hex');
  },
  yieldToEventLoop() {
    return new Promise((resolve) => setImmediate(resolve));
  },
  machine() {
    return {
      cores: Math.max(1, availableParallelism()),
      memoryBytes: totalmem(),
      hostname: hostname(),
      pid: process.pid,
    };
  },
  cpuTimeMs() {
    const usage = process.cpuUsage();
    return (usage.user + usage.system) / 1000;
  },
  memoryInUseBytes() {
    return process.memoryUsage.rss();
  },
  files: nodeFileAccess,
};
