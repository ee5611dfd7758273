// The container test alone (`make test-container`, through test/container/run.sh, which builds the image first).
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/container/container.e2e.ts'],
    fileParallelism: false,
    testTimeout: 180_000,
    hookTimeout: 240_000,
  },
});
