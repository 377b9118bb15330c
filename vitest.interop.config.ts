import { defineConfig } from 'vitest/config';

// Linux kernel interop: boots Debian's kernel under qemu (TCG), one guest at a time.
export default defineConfig({
  test: {
    include: ['test/interop/**/*.test.ts'],
    testTimeout: 900_000,
    hookTimeout: 900_000,
    fileParallelism: false,
    pool: 'forks',
  },
});
