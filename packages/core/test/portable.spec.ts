/**
 * The parts a browser worker needs import no Node module: the connection layer, the
 * protocol (handshake included) and the memory transport.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const src = fileURLToPath(new URL('../src/', import.meta.url));
const files = [
  ...readdirSync(join(src, 'connection')).map((f) => join('connection', f)),
  ...readdirSync(join(src, 'protocol')).map((f) => join('protocol', f)),
  'testing/memory-channel.ts',
  'testing/memory-transport.ts',
];

describe('portable modules', () => {
  it.each(files)('%s imports no node:* module and no Node-only global', (file) => {
    // Code only: comments may name Node APIs.
    const text = readFileSync(join(src, file), 'utf8')
      .replace(/\/\*[\s\S]*?\*\//g, '')
      .replace(/^\s*\/\/.*$/gm, '');
    expect(text).not.toMatch(/from\s+['"]node:/);
    expect(text).not.toMatch(/import\(\s*['"]node:/);
    expect(text).not.toMatch(/\bBuffer\.[a-z]|\bprocess\.[a-z]/);
  });
});
