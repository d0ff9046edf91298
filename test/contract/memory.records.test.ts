/** The Records contract against MemoryRecords (the unit-test fake). Needs no test stack: it belongs in the unit tier too. */
import { MemoryRecords } from '@cairn/core';
import { recordsContract } from './records.contract.ts';

recordsContract('MemoryRecords', async () => ({ records: new MemoryRecords(), close: async () => {} }), {
  knownDivergences: {
    'writes of an open transaction are not seen outside it before it commits':
      'a transaction writes straight into the shared tables, so reads outside it see its uncommitted rows',
    'a rolled-back transaction leaves the writes made outside it meanwhile':
      'a rollback restores a snapshot of every table taken when the transaction began, losing writes made outside it meanwhile',
  },
});
