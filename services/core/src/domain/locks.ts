import type { Prisma } from '../generated/prisma/client.ts';

/**
 * @deprecated Use `tx.lock(kind, id)` of `Records.transaction` (records/records.ts).
 * Transaction-scoped Postgres advisory lock on one record (`cairn:<kind>:<id>`), released at commit
 * or rollback. The one lock of every service (gateway, control worker), so check-then-write rules
 * that a unique index cannot express ("one backup or restore per instance", "no restore of a
 * backup being deleted") hold across every replica. Lock order: schedule, backup, instance, node.
 */
export async function lockRecord(tx: Prisma.TransactionClient, kind: 'instance' | 'backup' | 'schedule' | 'node', id: string): Promise<void> {
  await tx.$executeRaw`SELECT pg_advisory_xact_lock(hashtextextended(${`cairn:${kind}:${id}`}, 0))`;
}
