import { defineConfig } from 'vitest/config';

// The soak's short form: separate processes, bounded in time.
export default defineConfig({
  test: { include: ['test/soak/**/*.test.ts'], testTimeout: 300_000, hookTimeout: 60_000, fileParallelism: false, pool: 'forks' },
});
