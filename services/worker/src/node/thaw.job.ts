import { z } from 'zod';
import type { JobRun, JobWork, WorkOutcome } from '../job-lifecycle.ts';
import { hookEnvOf } from './hooks/node-hooks.ts';
import { thawOpenWindows, type ThawedWindow } from './hooks/run-with-hooks.ts';
import type { NodeContext } from './node-context.ts';

const thawParams = z
  .object({
    /** The job whose held hook windows end (a migrate's cutover backup). */
    heldBy: z.string().min(1),
    outcome: z.object({ status: z.enum(['succeeded', 'failed', 'cancelled']), error: z.string().nullable() }),
  })
  .strict();

/**
 * The end of a migrate's quiesced window (issue 12): the cutover backup ran the instance's pre
 * backup hook and left its window open (`hold`); once the migrate has switched the instance, or
 * failed, this runs the post hook on the node that holds the hook commands, with the migrate's
 * outcome, and closes the window. Idempotent: a window already closed (thawed by a node start)
 * is not run again.
 */
export class ThawJob implements JobWork<{ thawed: ThawedWindow[] }> {
  constructor(private readonly ctx: NodeContext) {}

  async run(run: JobRun): Promise<WorkOutcome<{ thawed: ThawedWindow[] }>> {
    const params = thawParams.parse(run.job?.params ?? {});
    const windows = await this.ctx.records.hooks.windows({ jobId: params.heldBy, status: 'open' });
    const thawed = await thawOpenWindows(hookEnvOf(this.ctx), windows, 'migrate', params.outcome);
    return { status: 'succeeded', result: { thawed } };
  }
}
