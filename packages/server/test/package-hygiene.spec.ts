/**
 * What the published server may depend on: `@tensorflow/tfjs` is the user's own copy (a peer,
 * as for core), and nothing it ships imports the private examples package or core's test kit.
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const packageDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

interface PackageJson {
  dependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
}

async function sourceFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => path.join(e.parentPath, e.name));
}

describe('the server package', () => {
  it('takes @tensorflow/tfjs as a peer, like core, and tests against a dev copy', async () => {
    const own = JSON.parse(await readFile(path.join(packageDir, 'package.json'), 'utf8')) as PackageJson;
    const core = JSON.parse(
      await readFile(path.join(packageDir, '../core/package.json'), 'utf8'),
    ) as PackageJson;
    expect(own.dependencies?.['@tensorflow/tfjs']).toBeUndefined();
    expect(own.peerDependencies?.['@tensorflow/tfjs']).toBe(core.peerDependencies?.['@tensorflow/tfjs']);
    expect(own.devDependencies?.['@tensorflow/tfjs']).toBeDefined();
    expect(own.dependencies?.['@dinfer/examples']).toBeUndefined();
  });

  it('imports neither @dinfer/examples nor @dinfer/core/testing from its sources', async () => {
    const files = await sourceFiles(path.join(packageDir, 'src'));
    expect(files.length).toBeGreaterThan(10);
    const offending: string[] = [];
    for (const file of files) {
      const text = await readFile(file, 'utf8');
      for (const match of text.matchAll(/['"](@dinfer\/examples|@dinfer\/core\/testing)['"]/g)) {
        offending.push(`${path.relative(packageDir, file)}: ${match[1]}`);
      }
    }
    expect(offending).toEqual([]);
  });
});
