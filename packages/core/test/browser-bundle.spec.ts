/**
 * Core's portable entry point, and the worker runtime above all, bundle for browsers with no
 * Node polyfills: esbuild resolves the package as a browser app would (`platform: 'browser'`,
 * the package's `exports` and `imports` maps with the browser conditions), and any `node:*`
 * module, or a Node built-in by its bare name, fails the build. Bundles the built package
 * (`dist/`), so it checks what is published.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { build, type Metafile } from 'esbuild';
import { describe, expect, it } from 'vitest';

const packageDir = fileURLToPath(new URL('..', import.meta.url));

async function bundle(contents: string): Promise<{ code: string; metafile: Metafile }> {
  const result = await build({
    stdin: { contents, resolveDir: packageDir, sourcefile: 'app.ts', loader: 'ts' },
    bundle: true,
    platform: 'browser',
    format: 'esm',
    target: 'es2022',
    write: false,
    metafile: true,
    logLevel: 'silent',
    // As an app would: the package's own tsconfig (its `paths` point tests at the Node platform) is not the app's.
    tsconfigRaw: '{}',
    // Keeps the check about imports: TF.js is bundled too, its own files are browser code.
    treeShaking: true,
  });
  return { code: result.outputFiles[0]!.text, metafile: result.metafile };
}

/**
 * What in the bundle speaks of Node: core's own Node-only files, and any import of a core file
 * that esbuild could only satisfy by disabling it. (Dependencies may map their own Node-only
 * imports to nothing in their `browser` field, as TF.js does for `node-fetch`, `fs` and
 * `crypto`; that is their browser build, not a polyfill. A `node:*` import that no such field
 * covers fails the build itself.)
 */
function nodeParts(metafile: Metafile): string[] {
  const found: string[] = [];
  for (const [input, info] of Object.entries(metafile.inputs)) {
    const ours = !input.includes('node_modules');
    if (ours && /dist\/(platform\/node(-files)?|node\/.*)\.js$/.test(input)) found.push(input);
    if (!ours) continue;
    for (const imported of info.imports) {
      if (imported.path.startsWith('node:') || imported.path.startsWith('(disabled)')) {
        found.push(`${input} -> ${imported.path}`);
      }
    }
  }
  return found;
}

describe('browser bundle of @dinfer/core', () => {
  it('is built', () => {
    expect(existsSync(new URL('../dist/index.js', import.meta.url)), 'run `pnpm build` first').toBe(true);
  });

  it('bundles the worker runtime and its transport plumbing with no Node module', async () => {
    const { code, metafile } = await bundle(`
      import { createWorker, dialConnection, memoryBlobStore, FrameDecoder, encodeFrame } from '@dinfer/core';
      export { createWorker, dialConnection, memoryBlobStore, FrameDecoder, encodeFrame };
    `);
    expect(nodeParts(metafile)).toEqual([]);
    // The portable platform was chosen: the web build's DEFLATE and SHA-256 are inside.
    const inputs = Object.keys(metafile.inputs);
    expect(inputs.some((input) => input.endsWith('dist/platform/web.js'))).toBe(true);
    expect(inputs.some((input) => input.includes('fflate'))).toBe(true);
    expect(code).not.toMatch(/\brequire\(["']node:/);
  }, 120_000);

  it('bundles the whole portable entry point (master side included) with no Node module', async () => {
    const { metafile } = await bundle(`export * from '@dinfer/core';`);
    expect(nodeParts(metafile)).toEqual([]);
  }, 120_000);

  it('fails, naming the module, when a Node-only entry point is bundled for a browser', async () => {
    await expect(bundle(`export { createBlobStore } from '@dinfer/core/node';`)).rejects.toThrow(
      /Could not resolve "(node:)?(fs|crypto|path|dgram|os)/,
    );
  }, 120_000);
});
