import { PrismaPg } from '@prisma/adapter-pg';
import { PrismaClient } from '../generated/prisma/client.ts';

export { PrismaClient };
export type * from '../generated/prisma/client.ts';

/** The one way Cairn opens Postgres: Prisma's JS engine over node-postgres (TOOLCHAIN.md). */
export function createPrisma(databaseUrl: string, options: { max?: number } = {}): PrismaClient {
  return new PrismaClient({ adapter: new PrismaPg({ connectionString: databaseUrl, max: options.max ?? 10, connectionTimeoutMillis: 5000 }) });
}
