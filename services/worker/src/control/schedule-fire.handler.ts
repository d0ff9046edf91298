import { CairnError, fireSchedule, fireTimeOfJobId } from '@cairn/core';
import type { ControlHandler } from './control-context.ts';

/**
 * A schedule firing (SPEC §9). The fire time comes from the payload (hand-made firings), else
 * from the scheduler's job id `repeat:<schedulerId>:<millis>`; it makes the firing's Backup and
 * Job ids, so a duplicate delivery creates nothing new. No Job row of its own: the firing's
 * backup Job (or its skip record) is what it writes.
 */
export const runScheduleFire: ControlHandler = (ctx, payload, job) => ({
  record: { kind: 'none' },
  work: {
    async run() {
      if (!payload.scheduleId) throw new CairnError('validation', 'schedule-fire needs a scheduleId');
      const fireTime = payload.fireTime ?? fireTimeOfJobId(job.id) ?? (job.opts as { prevMillis?: number }).prevMillis ?? job.timestamp;
      const outcome = await fireSchedule(
        {
          records: ctx.records,
          queues: ctx.queues,
          compression: ctx.compression,
          logger: ctx.logger,
          removeScheduler: (id) => ctx.schedulers.removeScheduler(id),
        },
        payload.scheduleId,
        fireTime,
      );
      switch (outcome.status) {
        case 'created':
        case 'duplicate':
          return { status: 'succeeded', result: { status: outcome.status, fireTime, backupId: outcome.backup.id, jobId: outcome.job?.id ?? null } };
        case 'skipped':
          return { status: 'succeeded', result: { status: 'skipped', fireTime, reason: outcome.reason, skipJobId: outcome.skipJob.id } };
        case 'ignored':
          return { status: 'succeeded', result: { status: 'ignored', fireTime, reason: outcome.reason } };
      }
    },
  },
});
