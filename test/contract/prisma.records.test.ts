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
  {},
);
