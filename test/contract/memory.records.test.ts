/** The Records contract against MemoryRecords (the unit-test fake). Needs no test stack: it belongs in the unit tier too. */
import { MemoryRecords } from '@cairn/core';
import { recordsContract } from './records.contract.ts';

recordsContract('MemoryRecords', async () => ({ records: new MemoryRecords(), close: async () => {} }), {
  knownDivergences: {
    'create refuses a backupId or parentJobId naming no row (foreign keys)':
      'jobs.create stores a job whose backupId / parentJobId names no row; Postgres refuses it (foreign key, P2003)',
    'create refuses an instance that does not exist (foreign key)':
      'backups.create stores a backup of an instance that does not exist; Postgres refuses it (foreign key, P2003)',
    'writes of an open transaction are not seen outside it before it commits':
      'a transaction writes straight into the shared tables, so reads outside it see its uncommitted rows',
    'a rolled-back transaction leaves the writes made outside it meanwhile':
      'a rollback restores a snapshot of every table taken when the transaction began, losing writes made outside it meanwhile',
    'JSON columns hold JSON: a Date inside is stored as its ISO string, an undefined field is left out':
      'JSON values are structuredClone-d, not JSON-encoded: a Date stays a Date and an undefined field stays present',
  },
});
