/**
 * {@link FileAccess} over `node:fs`, for the Node.js platform.
 *
 * @module
 */
import { mkdir, open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FileAccess } from './platform.js';

let temporaryCount = 0;

/** The local file system. */
export const nodeFileAccess: FileAccess = {
  resolve(source) {
    return resolve(source.startsWith('file://') ? fileURLToPath(source) : source);
  },
  join,
  dirname,
  async stat(path) {
    const info = await stat(path);
    return { size: info.size, directory: info.isDirectory() };
  },
  readText(path, signal) {
    return readFile(path, { encoding: 'utf8', ...(signal ? { signal } : {}) });
  },
  async readBytes(path, signal) {
    const data = await readFile(path, signal ? { signal } : {});
    return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  },
  async readInto(path, position, target) {
    const handle = await open(path, 'r');
    try {
      let done = 0;
      while (done < target.byteLength) {
        const { bytesRead } = await handle.read(target, done, target.byteLength - done, position + done);
        if (bytesRead === 0) break;
        done += bytesRead;
      }
      return done;
    } finally {
      await handle.close();
    }
  },
  async makeDirectory(path) {
    await mkdir(path, { recursive: true });
  },
  async writeBytes(path, data) {
    await writeFile(path, data);
  },
  async writeAtomically(path, data) {
    const temporary = `${path}.${process.pid}-${++temporaryCount}.tmp`;
    try {
      await writeFile(temporary, data);
      await rename(temporary, path);
    } catch (error) {
      await rm(temporary, { force: true });
      throw error;
    }
  },
};
