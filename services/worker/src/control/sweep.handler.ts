import type { ControlJobPayload } from '@cairn/core';
import type { ControlContext } from './control-context.ts';
import { recordSweep, runOrphanSweep, summarise } from './orphan-sweep.service.ts';

/** The periodic orphan sweep (SPEC §10), recorded as a `sweep` Job with what it did. */
export async function runSweep(ctx: ControlContext, _payload: ControlJobPayload): Promise<object> {
  const { jobId, value } = await recordSweep(
    ctx.prisma,
    () => runOrphanSweep({ prisma: ctx.prisma, store: ctx.store, queues: ctx.queues, logger: ctx.logger, clock: ctx.clock }, ctx.sweep),
    { kind: 'orphans', result: (report) => ({ summary: summarise(report), ...report }) },
  );
  const summary = summarise(value);
  ctx.logger.info({ sweepJobId: jobId, ...summary }, 'sweep finished');
  return { sweepJobId: jobId, ...summary };
}
