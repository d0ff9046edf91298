import { PrismaPg } from '@prisma/adapter-pg';
import pg from 'pg';
import { PrismaClient } from '../generated/prisma/client.ts';

export { PrismaClient };
export type * from '../generated/prisma/client.ts';

/**
 * The node-postgres pool Cairn's Postgres connections come from: Prisma's adapter uses it, and so
 * do the records' plain-SQL reads (records/sql-reads.ts), so both share one set of connections.
 */
export function createPgPool(databaseUrl: string, options: { max?: number } = {}): pg.Pool {
  const pool = new pg.Pool({ connectionString: databaseUrl, max: options.max ?? 10, connectionTimeoutMillis: 5000 });
  // A connection that breaks while idle is dropped by the pool; without a listener its error would end the process.
  pool.on('error', () => {});
  return pool;
}

/** The one way Cairn opens Postgres: Prisma's JS engine over node-postgres (TOOLCHAIN.md), on `pool` when given. */
export function createPrisma(databaseUrl: string, options: { max?: number } = {}, pool?: pg.Pool): PrismaClient {
  return new PrismaClient({ adapter: new PrismaPg(pool ?? { connectionString: databaseUrl, max: options.max ?? 10, connectionTimeoutMillis: 5000 }) });
}
