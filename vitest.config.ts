import { defineConfig } from 'vitest/config';

// e2e tests start real hosts on a 2-core machine: files run one at a time, tests inside a
// file decide their own parallelism.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 600_000,
    pool: 'forks',
    reporters: ['default'],
  },
});
