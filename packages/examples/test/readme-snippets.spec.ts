/**
 * Every TypeScript snippet in the READMEs must compile against the packages as built: docs
 * that drift from the API fail here. A snippet whose first line is `// file: <name>.ts` is
 * written under that name, so later snippets can import it (`./<name>.js`).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const here = dirname(fileURLToPath(import.meta.url));
const examplesDir = resolve(here, '..');
const repoRoot = resolve(examplesDir, '../..');
const checkDir = join(examplesDir, '.readme-check');

function readmes(): string[] {
  const packages = readdirSync(join(repoRoot, 'packages')).map((p) =>
    join(repoRoot, 'packages', p, 'README.md'),
  );
  return [join(repoRoot, 'README.md'), ...packages].filter((file) => {
    try {
      readFileSync(file);
      return true;
    } catch {
      return false;
    }
  });
}

function snippets(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1] ?? '');
}

describe('README snippets', () => {
  it('compile with strict TypeScript against the built packages', () => {
    rmSync(checkDir, { recursive: true, force: true });
    mkdirSync(checkDir, { recursive: true });
    const files: string[] = [];
    for (const readme of readmes()) {
      const name = readme.slice(repoRoot.length + 1).replace(/[/.]/g, '_');
      snippets(readme).forEach((code, i) => {
        const named = /^\/\/ file: ([\w-]+\.ts)\n/.exec(code)?.[1];
        const file = join(checkDir, named ?? `${name}_${i}.ts`);
        // Each snippet is its own module (top-level await allowed).
        writeFileSync(file, `${code}\nexport {};\n`);
        files.push(file);
      });
    }
    expect(files.length).toBeGreaterThanOrEqual(4);
    writeFileSync(
      join(checkDir, 'tsconfig.json'),
      JSON.stringify({
        extends: '../../../tsconfig.base.json',
        compilerOptions: {
          noEmit: true,
          composite: false,
          declaration: false,
          declarationMap: false,
          types: ['node'],
          noUnusedLocals: false,
        },
        include: ['*.ts'],
      }),
    );
    const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
    let output = '';
    try {
      execFileSync(process.execPath, [tsc, '-p', checkDir], { encoding: 'utf8', stdio: 'pipe' });
    } catch (error) {
      output = String((error as { stdout?: string }).stdout ?? error);
    }
    expect(output).toBe('');
    rmSync(checkDir, { recursive: true, force: true });
  }, 120_000);
});
