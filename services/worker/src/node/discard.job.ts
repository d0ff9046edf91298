import fs from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import type { JobRun, JobWork, WorkOutcome } from '../job-lifecycle.ts';
import type { NodeContext } from './node-context.ts';
import { unownedDirs } from './registered-volumes.ts';
import { OLD_PREFIX, STAGING_PREFIX } from './staging.ts';

const discardParams = z
  .object({
    hostPaths: z.record(z.string(), z.string()),
    /** The migrate's job id: its restores' staging and displaced directories beside the host paths go too. */
    jobPrefix: z.string().min(1).optional(),
  })
  .strict();

export interface DiscardResult {
  removed: string[];
  absent: string[];
}

/**
 * Removes what a failed or cancelled move staged on its target node (issue 12): the directories a
 * migrate restored the instance into before the switch, and its restores' staging leftovers
 * beside them (kept data, `.cairn-kept-*`, never). Only directories inside this node's
 * volume roots (never a root itself) that no registered volume is, lies in, or holds; so data of
 * an instance, including the moved instance once switched, is never touched. Idempotent.
 */
export class DiscardJob implements JobWork<DiscardResult> {
  constructor(private readonly ctx: NodeContext) {}

  async run(run: JobRun): Promise<WorkOutcome<DiscardResult>> {
    const params = discardParams.parse(run.job?.params ?? {});
    const dirs = await unownedDirs(this.ctx, params.hostPaths, 'it is not removed');
    const result: DiscardResult = { removed: [], absent: [] };
    for (const [name, real] of Object.entries(dirs)) {
      const hostPath = params.hostPaths[name]!;
      // What a restore of this migrate left beside it (a worker killed mid-restore): `.cairn-staging-<job>.<base>`...
      if (params.jobPrefix) {
        const home = path.dirname(real);
        const base = path.basename(real);
        const names = await fs.readdir(home).catch(() => [] as string[]);
        for (const n of names) {
          if (!n.endsWith(`.${base}`)) continue;
          const prefix = [STAGING_PREFIX, OLD_PREFIX].find((p) => n.startsWith(`${p}${params.jobPrefix}-`));
          if (!prefix) continue;
          await fs.rm(path.join(home, n), { recursive: true, force: true });
          result.removed.push(path.join(home, n));
        }
      }
      try {
        await fs.lstat(real);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        result.absent.push(hostPath);
        continue;
      }
      await fs.rm(real, { recursive: true, force: true });
      result.removed.push(hostPath);
      run.log.info({ hostPath, volume: name }, 'removed what a migrate staged');
    }
    return { status: 'succeeded', result };
  }
}
