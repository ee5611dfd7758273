// The real-Label-Studio end-to-end test alone (`make test-label-studio`): one file, started once, steps in order.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/label-studio/label-studio.e2e.ts'],
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 420_000,
  },
});
