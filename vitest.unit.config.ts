import { defineConfig } from 'vitest/config';

/**
 * The unit tier (`npm run test:unit`): services, pipelines and the job lifecycle over in-memory
 * records and object store, and pure logic. No Postgres, Redis or S3: no global test stack.
 */
export default defineConfig({
  test: {
    include: ['test/unit/**/*.test.ts', 'test/contract/memory.object-store.test.ts', 'test/contract/memory.records.test.ts'],
    testTimeout: 20_000,
    env: { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
    pool: 'forks',
    // Every file loads the same core modules (the AWS SDK, BullMQ): loading them once per worker
    // instead of once per file is most of this tier's time. The tests share no global state.
    isolate: false,
  },
});
