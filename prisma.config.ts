// Prisma 6.19.3 CLI configuration for fully offline use (TOOLCHAIN.md): the JS schema engine
// through @prisma/adapter-pg, so no native engine is ever downloaded.
import { defineConfig } from 'prisma/config';
import { PrismaPg } from '@prisma/adapter-pg';
import pg from 'pg';

const DEFAULT_DATABASE_URL = 'postgresql://postgres@127.0.0.1:5432/cairn';

// The CLI does not load .env when a config file exists; generate needs a URL even if unused.
process.env.DATABASE_URL ??= DEFAULT_DATABASE_URL;

function poolConfig(database?: string): pg.PoolConfig {
  const url = new URL(process.env.DATABASE_URL ?? DEFAULT_DATABASE_URL);
  return {
    host: url.hostname || '127.0.0.1',
    port: Number(url.port || 5432),
    user: decodeURIComponent(url.username || 'postgres'),
    password: url.password ? decodeURIComponent(url.password) : undefined,
    database: database ?? decodeURIComponent(url.pathname.replace(/^\//, '') || 'postgres'),
  };
}

// adapter-pg 6.x cannot decode catalog columns of type `name` (oid 19) and `"char"` (oid 18)
// (prisma/orm#27403); migrate introspection selects them. Report both to Prisma as text (oid 25).
const CATALOG_TEXT_OIDS = new Set([18, 19]);
let patched = false;
async function patchCatalogTypes(factory: PrismaPg): Promise<void> {
  if (patched) return;
  const probe = await factory.connect();
  const queryable = Object.getPrototypeOf(Object.getPrototypeOf(probe)) as {
    performIO: (this: unknown, query: unknown) => Promise<{ fields: { dataTypeID: number }[] }>;
  };
  const original = queryable.performIO;
  queryable.performIO = async function (query) {
    const result = await original.call(this, query);
    for (const field of result.fields) if (CATALOG_TEXT_OIDS.has(field.dataTypeID)) field.dataTypeID = 25;
    return result;
  };
  await probe.dispose();
  patched = true;
}

// adapter-pg 6.x's shadow database handling drops the database before closing its pool.
// Create a separate database, use it, close it, then drop it.
class MigrateAdapterFactory extends PrismaPg {
  override async connectToShadowDb() {
    const name = `cairn_shadow_${Date.now()}_${Math.floor(Math.random() * 1e6)}`;
    const admin = new pg.Client(poolConfig());
    await admin.connect();
    await admin.query(`CREATE DATABASE "${name}"`);
    await admin.end();
    const shadow = await new PrismaPg(poolConfig(name)).connect();
    const dispose = shadow.dispose.bind(shadow);
    shadow.dispose = async () => {
      await dispose();
      const dropper = new pg.Client(poolConfig());
      await dropper.connect();
      try {
        await dropper.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      } finally {
        await dropper.end();
      }
    };
    return shadow;
  }
}

export default defineConfig({
  schema: 'prisma/schema.prisma',
  migrations: { path: 'prisma/migrations' },
  experimental: { adapter: true },
  engine: 'js',
  async adapter() {
    const factory = new MigrateAdapterFactory(poolConfig());
    await patchCatalogTypes(factory);
    return factory;
  },
});
