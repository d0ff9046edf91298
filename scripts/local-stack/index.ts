import path from 'node:path';
import { loadConfig, type Env } from '../../services/core/src/config/config.ts';
import { createDatabase, dropDatabase, ensurePostgres, migrate, withDatabase } from './postgres.ts';
import type { Log, Started } from './process.ts';
import { ensureRedis } from './redis.ts';
import { ensureS3 } from './s3.ts';

export interface LocalStackOptions {
  env?: Env;
  log?: Log;
  /** Use a database of this name instead of the one in DATABASE_URL (created, migrated). */
  database?: string;
  /** Drop `database` when the stack stops (test runs). */
  dropDatabaseOnStop?: boolean;
  /** Where a locally started S3 server keeps its data. */
  s3Directory?: string;
  /** Override the bucket (test runs use their own). */
  bucket?: string;
}

export interface LocalStack {
  /** Environment to hand to Cairn processes: the URLs of what answers now. */
  env: Record<string, string>;
  started: string[];
  stop(): Promise<void>;
}

/**
 * Finds or starts Postgres, Redis and an S3-compatible server (SPEC §14), creates and migrates
 * the database and creates the bucket. Used by `npm start`, `npm test` and `.ci/run`.
 */
export async function startLocalStack(options: LocalStackOptions = {}): Promise<LocalStack> {
  const env = options.env ?? process.env;
  const log = options.log ?? ((m: string) => console.log(`[stack] ${m}`));
  const config = loadConfig(env);
  const started: Started[] = [];
  const stop = async () => {
    for (const s of started.reverse()) await s.stop().catch((e: Error) => log(`${s.name}: stop failed: ${e.message}`));
  };
  try {
    // Stopped in reverse order: the test database is dropped before a server we started stops.
    const pg = await ensurePostgres(config.DATABASE_URL, log);
    if (pg.started) started.push(pg.started);
    const database = options.database ?? decodeURIComponent(new URL(config.DATABASE_URL).pathname.slice(1) || 'cairn');
    const databaseUrl = withDatabase(config.DATABASE_URL, database);
    await createDatabase(config.DATABASE_URL, database);
    migrate(databaseUrl);
    log(`postgres: database ${database} migrated`);
    if (options.dropDatabaseOnStop) started.push({ name: 'database', stop: () => dropDatabase(config.DATABASE_URL, database) });

    const redis = await ensureRedis(config.REDIS_URL, log);
    if (redis.started) started.push(redis.started);

    const bucket = options.bucket ?? config.S3_BUCKET;
    const s3 = await ensureS3(
      { endpoint: config.S3_ENDPOINT, region: config.S3_REGION, bucket, accessKeyId: config.S3_ACCESS_KEY_ID, secretAccessKey: config.S3_SECRET_ACCESS_KEY },
      options.s3Directory ?? path.resolve(config.CAIRN_DATA_DIR, 's3'),
      log,
    );
    if (s3.started) started.push(s3.started);

    return {
      env: { DATABASE_URL: databaseUrl, REDIS_URL: config.REDIS_URL, S3_ENDPOINT: s3.endpoint, S3_BUCKET: bucket },
      started: started.map((s) => s.name),
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
