/**
 * Runs the archive engine's tests alone, without the global setup that starts Postgres, Redis
 * and S3 (the engine needs none of them): `npx vitest run --config test/archive/vitest.archive.config.ts`.
 */
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/archive/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 180_000,
    pool: 'forks',
    fileParallelism: true,
  },
});
