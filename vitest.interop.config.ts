import { defineConfig } from 'vitest/config';

// Linux kernel interop: boots Debian's kernels (6.1, 6.12, 7.2) under qemu (TCG), one guest at a time.
export default defineConfig({
  test: {
    include: ['test/interop/**/*.test.ts'],
    // Builds whatever image of the kernel matrix is missing (INTEROP_KERNELS narrows it).
    globalSetup: ['test/interop/global-setup.ts'],
    testTimeout: 900_000,
    hookTimeout: 900_000,
    fileParallelism: false,
    pool: 'forks',
  },
});
