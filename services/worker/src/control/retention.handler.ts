import { applyAllRetention, applyRetention, type ControlJobPayload } from '@cairn/core';
import type { ControlContext } from './control-context.ts';

/**
 * Retention (SPEC §9): of one schedule (after its backup completed, or after its policy changed),
 * or of every schedule when the payload names none (the periodic run).
 */
export async function runRetention(ctx: ControlContext, payload: ControlJobPayload): Promise<object> {
  const deps = { prisma: ctx.prisma, queues: ctx.queues, logger: ctx.logger, clock: ctx.clock };
  if (payload.scheduleId) return applyRetention(deps, payload.scheduleId);
  return applyAllRetention(deps);
}
