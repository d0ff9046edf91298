import { applyAllManualRetention, applyAllRetention, applyManualRetention, applyRetention } from '@cairn/core';
import type { ControlHandler } from './control-context.ts';

/**
 * Retention (SPEC §9): of one schedule (after its backup completed, or after its policy changed),
 * of one instance's manual backups (after its manual retention policy changed, issue 13), or of
 * every schedule and every instance with a manual policy when the payload names none (the
 * periodic run). No Job row: what it deletes is recorded by the cleanup jobs it starts.
 */
export const runRetention: ControlHandler = (ctx, payload) => ({
  record: { kind: 'none' },
  work: {
    async run() {
      const deps = { records: ctx.records, queues: ctx.queues, logger: ctx.logger, clock: ctx.clock };
      const result = payload.scheduleId
        ? await applyRetention(deps, payload.scheduleId)
        : payload.instanceId
          ? await applyManualRetention(deps, payload.instanceId)
          : { ...(await applyAllRetention(deps)), manual: await applyAllManualRetention(deps) };
      return { status: 'succeeded', result };
    },
  },
});
