import { defineConfig } from 'vitest/config';

// Unit and integration tests: fast, in-process, real sockets on 127.0.0.1.
// The interop suite (Linux in qemu) has its own config: vitest.interop.config.ts.
export default defineConfig({
  test: {
    include: ['test/unit/**/*.test.ts', 'test/integration/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
  },
});
