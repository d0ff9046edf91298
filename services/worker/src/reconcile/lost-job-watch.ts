import type { Redis } from 'ioredis';
import { reconcileLostJobs, type LostJobDeps, type LostJobOptions, type LostJobOutcome } from './lost-jobs.ts';

export interface LostJobWatchOptions extends Omit<LostJobOptions, 'heartbeatsVisibleSince'> {
  /** Period of the check; null: only after a Redis reconnect (and when asked). */
  everyMs: number | null;
  /** Its 'ready' after a reconnect (Redis restarted, maybe empty) starts a check at once. */
  redis?: Pick<Redis, 'on' | 'off'>;
  /** After a reconnect, give the BullMQ workers this long to be back before the check. Default 1 s. */
  reconnectDelayMs?: number;
}

export interface LostJobWatch {
  /** One check now (or right after the one under way); resolves with what it did. */
  check(): Promise<LostJobOutcome[]>;
  stop(): void;
}

/**
 * Runs reconcileLostJobs on a timer and whenever Redis comes back, one check at a time. A check that
 * fails (Postgres or Redis down) is logged and the next one tries again; after such a failure node
 * heartbeats are judged afresh, since no node could write one while the database was away.
 */
export function watchLostJobs(deps: LostJobDeps, options: LostJobWatchOptions): LostJobWatch {
  const { logger } = deps;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<LostJobOutcome[]> | undefined;
  let again = false;
  let heartbeatsVisibleSince = new Date();
  let lastFailed = false;

  const pass = async (): Promise<LostJobOutcome[]> => {
    try {
      if (lastFailed) heartbeatsVisibleSince = new Date();
      const outcomes = await reconcileLostJobs(deps, { ...options, heartbeatsVisibleSince });
      lastFailed = false;
      if (outcomes.length) logger.info({ outcomes }, 'lost jobs reconciled');
      return outcomes;
    } catch (err) {
      lastFailed = true;
      logger.warn({ err: (err as Error).message }, 'looking for lost jobs failed; trying again later');
      return [];
    }
  };
  const check = (): Promise<LostJobOutcome[]> => {
    if (running) {
      again = true;
      return running;
    }
    running = pass().finally(() => {
      running = undefined;
      if (again && !stopped) {
        again = false;
        void check();
      }
    });
    return running;
  };
  const schedule = () => {
    if (stopped || options.everyMs === null) return;
    timer = setTimeout(() => void check().finally(schedule), options.everyMs);
    timer.unref();
  };
  // The first 'ready' is the connection's start; every later one follows a reconnect.
  let connectedOnce = (options.redis as { status?: string } | undefined)?.status === 'ready';
  const onReady = () => {
    if (!connectedOnce) {
      connectedOnce = true;
      return;
    }
    logger.info('Redis reconnected; looking for jobs it lost');
    setTimeout(() => void (stopped ? undefined : check()), options.reconnectDelayMs ?? 1000).unref();
  };
  options.redis?.on('ready', onReady);
  schedule();
  return {
    check,
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      options.redis?.off('ready', onReady);
    },
  };
}
