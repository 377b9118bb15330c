import { defineConfig } from 'vitest/config';

// The target fuzzer, short form (about 30 s): npx vitest run --config vitest.fuzz.config.ts
// FUZZ_SEED=<seed> reproduces a run; the long form is scripts/fuzz.ts (see docs/robustness.md).
export default defineConfig({
  test: {
    include: ['test/fuzz/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 30_000,
    pool: 'forks',
    fileParallelism: false,
  },
});
