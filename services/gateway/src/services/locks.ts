import type { Prisma } from '@cairn/core';

/**
 * Transaction-scoped Postgres advisory locks. They serialise the check-then-insert rules that a
 * unique index cannot express ("one running backup or restore per instance", "no restore of a
 * backup being deleted") across every gateway replica; released at commit or rollback.
 */
export async function lockFor(tx: Prisma.TransactionClient, kind: 'instance' | 'backup', id: string): Promise<void> {
  await tx.$executeRaw`SELECT pg_advisory_xact_lock(hashtextextended(${`cairn:${kind}:${id}`}, 0))`;
}
