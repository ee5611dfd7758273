import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The fixture model, then a throwaway PostgreSQL cluster for the audit trail's second backend.
    globalSetup: ['test/global-setup.ts', 'test/postgres-setup.ts'],
    // Each HTTP file starts real onnxruntime worker threads; two files at a time suits a 2-core machine.
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});
