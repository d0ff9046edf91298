import { newId } from '@cairn/core';
import type { ControlHandler } from './control-context.ts';
import { runOrphanSweep, summarise } from './orphan-sweep.service.ts';

/** The periodic orphan sweep (SPEC §10), recorded as a `sweep` Job with what it did. */
export const runSweep: ControlHandler = (ctx) => {
  const sweepJobId = newId();
  return {
    record: { kind: 'create', job: { id: sweepJobId, type: 'sweep', params: { kind: 'orphans' }, requestedBy: 'system' } },
    work: {
      async run(run) {
        const report = await runOrphanSweep({ records: ctx.records, store: ctx.store, queues: ctx.queues, logger: ctx.logger, clock: ctx.clock }, ctx.sweep);
        const summary = summarise(report);
        run.log.info(summary, 'sweep finished');
        return { status: 'succeeded', result: { summary, ...report }, returnValue: { sweepJobId, ...summary } };
      },
    },
  };
};
