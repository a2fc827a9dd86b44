/**
 * The portable {@link Platform} for browsers and other runtimes: DEFLATE from `fflate` (pure
 * JavaScript, synchronous like Node's zlib calls it replaces), SHA-256 from `@noble/hashes`
 * (audited, synchronous like `node:crypto`'s hash), a yield through a `MessageChannel` (a
 * macrotask without `setTimeout`'s clamping), and no file system.
 *
 * @module
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex } from '@noble/hashes/utils.js';
import { deflateSync, inflateSync } from 'fflate';
import type { Platform } from './platform.js';

/** The host facilities of a browser (or any runtime without `node:*` modules). */
export const platform: Platform = {
  deflateRaw(data, level) {
    return deflateSync(data, { level: Math.min(9, Math.max(0, Math.round(level))) as 0 });
  },
  inflateRaw(data, maxBytes) {
    // fflate stops at the end of a given output buffer: one byte of room past the limit tells
    // an over-long stream from one that fits exactly.
    const out = inflateSync(data, { out: new Uint8Array(Math.max(1, maxBytes) + 1) });
    if (out.byteLength > maxBytes) throw new RangeError(`inflated data exceeds ${maxBytes} bytes`);
    return out;
  },
  sha256Hex(parts) {
    const hash = sha256.create();
    for (const part of parts) hash.update(part);
    return bytesToHex(hash.digest());
  },
  machine() {
    const nav = (globalThis as { navigator?: { hardwareConcurrency?: number; deviceMemory?: number } })
      .navigator;
    const gib = nav?.deviceMemory;
    const host = (globalThis as { location?: { hostname?: string } }).location?.hostname;
    return {
      cores: Math.max(1, nav?.hardwareConcurrency ?? 1),
      // Chromium reports memory in GiB, rounded down to a power of two and capped at 8.
      memoryBytes: typeof gib === 'number' ? gib * 1024 ** 3 : undefined,
      hostname: host === undefined || host.length === 0 ? 'browser' : host,
      pid: undefined,
    };
  },
  cpuTimeMs() {
    return undefined;
  },
  memoryInUseBytes() {
    // Chromium's non-standard heap figure: the JavaScript heap only, not wasm or GPU memory.
    const memory = (globalThis as { performance?: { memory?: { usedJSHeapSize?: number } } }).performance
      ?.memory;
    return typeof memory?.usedJSHeapSize === 'number' ? memory.usedJSHeapSize : undefined;
  },
  files: undefined,
  yieldToEventLoop() {
    return new Promise((resolve) => {
      const channel = new MessageChannel();
      channel.port1.onmessage = () => {
        channel.port1.close();
        resolve();
      };
      channel.port2.postMessage(undefined);
    });
  },
};
