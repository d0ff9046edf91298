/** The Records contract against PrismaRecords, on the run's Postgres (vitest global setup). */
import { loadConfig, PrismaRecords } from '@cairn/core';
import { recordsContract } from './records.contract.ts';

recordsContract(
  'PrismaRecords',
  async () => {
    const records = PrismaRecords.open(loadConfig(process.env).DATABASE_URL);
    await records.ping();
    return { records, close: () => records.close() };
  },
  {
    knownDivergences: {
      'countByNode honours a nodeId filter': 'countByNode spreads `nodeId: { not: null }` over the filter, replacing its nodeId: every node is counted',
      'update to a taken name with new volumes leaves the volumes as they were':
        'instances.update replaces the volumes before the update that fails on the name, outside a transaction: the new volumes stay',
      'a UniqueViolation names the fields of the violated constraint':
        'unique() reads meta.target, which the pg driver adapter leaves unset (fields are in meta.driverAdapterError.cause.constraint.fields): fields is []',
    },
  },
);
