import { ACTIVE_JOB_STATUSES, CairnError, CONTROL_QUEUE, failUnqueued, newId, type Logger, type Records } from '@cairn/core';
import type { JobView } from '@cairn/core/api/index.ts';
import type { VerifyBody } from '@cairn/core/api/verify.schemas.ts';
import { toCairnError } from '../middleware/error-handler.ts';
import type { QueuePort } from '../queue/queue-client.ts';
import type { Actor } from './actor.ts';
import type { BackupService } from './backup.service.ts';
import { jobView } from './presenters.ts';

export interface VerifyServiceOptions {
  records: Records;
  queues: QueuePort;
  backups: BackupService;
  logger: Logger;
}

/**
 * `POST /v1/backups/:id/verify` (issue 14): a `verify` Job for a completed backup the caller can
 * see, run by the control worker (it needs only S3). One verify of a backup at a time.
 */
export class VerifyService {
  constructor(private readonly options: VerifyServiceOptions) {}

  async start(actor: Actor, backupId: string, body: VerifyBody): Promise<JobView> {
    const { records, queues, backups, logger } = this.options;
    const backup = await backups.findVisible(actor, backupId);
    if (backup.status !== 'completed')
      throw new CairnError('conflict', `backup ${backup.id} is ${backup.status}: only completed backups can be verified`, {
        details: { status: backup.status },
      });
    await queues.ready();
    const jobId = newId();
    const params = { level: body.level, ...(body.level === 'sample' ? { samplePercent: body.samplePercent ?? 10 } : {}) };
    const job = await records.transaction(async (tx) => {
      await tx.lock('backup', backup.id);
      const current = await tx.backups.get(backup.id);
      if (current?.status !== 'completed')
        throw new CairnError('conflict', `backup ${backup.id} is ${current?.status ?? 'gone'}: only completed backups can be verified`, {
          details: { status: current?.status },
        });
      const active = await tx.jobs.findFirst({ type: 'verify', backupId: backup.id, status: ACTIVE_JOB_STATUSES });
      if (active)
        throw new CairnError('conflict', `a verify of backup ${backup.id} is already ${active.status} (job ${active.id})`, { details: { jobId: active.id } });
      return tx.jobs.create({
        id: jobId,
        type: 'verify',
        status: 'queued',
        instanceId: backup.instanceId,
        backupId: backup.id,
        queue: CONTROL_QUEUE,
        params,
        requestedBy: actor.tokenId,
      });
    });
    try {
      await queues.enqueueControl('verify', { jobId, backupId: backup.id }, jobId);
    } catch (err) {
      const reason = `could not enqueue the verify: ${toCairnError(err).message}`;
      await failUnqueued(records, logger, { jobId }, reason);
      throw new CairnError('unavailable', reason, { cause: err, details: { jobId } });
    }
    logger.info({ jobId, backupId: backup.id, ...params, by: actor.tokenId }, 'verify requested');
    return jobView(job);
  }
}
