import type { PrismaClient } from '../db/prisma.ts';
import type { BackupStatus, JobStatus, Prisma } from '../generated/prisma/client.ts';

/**
 * @deprecated Use `records.jobs.transition` / `records.backups.transition` (records/records.ts).
 * Conditional state changes (SPEC §3): `updateMany where {id, status in expected}` so a late
 * writer cannot overwrite a newer state. Each returns whether the change happened.
 */
export async function transitionJob(
  prisma: PrismaClient,
  id: string,
  from: JobStatus[],
  to: JobStatus,
  data: Omit<Prisma.JobUpdateManyMutationInput, 'status'> = {},
): Promise<boolean> {
  const terminal = to === 'succeeded' || to === 'failed' || to === 'cancelled' || to === 'interrupted';
  const { count } = await prisma.job.updateMany({
    where: { id, status: { in: from } },
    data: { ...(terminal ? { finishedAt: new Date() } : {}), ...data, status: to },
  });
  return count === 1;
}

export async function transitionBackup(
  prisma: PrismaClient,
  id: string,
  from: BackupStatus[],
  to: BackupStatus,
  data: Omit<Prisma.BackupUpdateManyMutationInput, 'status'> = {},
): Promise<boolean> {
  const { count } = await prisma.backup.updateMany({ where: { id, status: { in: from } }, data: { ...data, status: to } });
  return count === 1;
}

// Defined with the records; re-exported here until the last caller of this module moves to `records.*.transition`.
export { ACTIVE_JOB_STATUSES, TERMINAL_JOB_STATUSES } from '../records/records.ts';
