import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  resolve: {
    // Tests run the sources: `#platform` is the Node implementation, as the package's `imports`
    // map gives Node (the built map points into dist/).
    alias: { '#platform': fileURLToPath(new URL('./src/platform/node.ts', import.meta.url)) },
  },
  test: {
    include: ['test/**/*.spec.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
  },
});
