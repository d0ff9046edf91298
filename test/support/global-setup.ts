import '../../scripts/quiet-sdk.ts';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import 'vitest';
import type { TestProject } from 'vitest/node';
import { startLocalStack } from '../../scripts/local-stack/index.ts';

/**
 * Finds or starts Postgres, Redis and S3 once per `npm test` run and isolates the run: its own
 * database (migrated), Redis key prefix and bucket. Test files read the result from process.env.
 */
export default async function setup(project: TestProject) {
  const runId = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
  const s3Directory = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-test-s3-'));
  const stack = await startLocalStack({
    database: `cairn_test_${runId}`,
    dropDatabaseOnStop: true,
    bucket: `cairn-test-${runId}`,
    s3Directory,
    log: (m) => console.log(`[test stack] ${m}`),
  });
  const env: Record<string, string> = { ...stack.env, QUEUE_PREFIX: `{cairn-test-${runId}}`, S3_PREFIX: `run-${runId}`, CAIRN_TEST_RUN_ID: runId };
  Object.assign(process.env, env);
  project.provide('stackEnv', env);
  console.log(
    `[test stack] run ${runId}: database ${new URL(stack.env.DATABASE_URL!).pathname.slice(1)}, redis prefix ${env.QUEUE_PREFIX}, ` +
      `bucket ${stack.env.S3_BUCKET}${stack.started.length ? `; started: ${stack.started.join(', ')}` : ''}`,
  );
  return async () => {
    await stack.stop();
    fs.rmSync(s3Directory, { recursive: true, force: true });
  };
}

declare module 'vitest' {
  export interface ProvidedContext {
    stackEnv: Record<string, string>;
  }
}
