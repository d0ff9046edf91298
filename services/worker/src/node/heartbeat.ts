import fs from 'node:fs/promises';
import type { Logger, NodeRecords, VolumeStateReports } from '@cairn/core';
import type { HookCommands } from './hooks/hook-commands.ts';

export const HEARTBEAT_INTERVAL_MS = 10_000;
export const VOLUME_CHECK_TIMEOUT_MS = 5_000;

/**
 * The volume check of a beat. A check that fails, is still running from an earlier beat or takes
 * longer than `timeoutMs` (a volume on a dead NFS server) gives nothing: the stored report stands
 * and the beat still goes out, so the node does not look offline; and at most one check runs, so a
 * hung path holds one thread-pool thread, not one more every beat.
 */
function volumeChecker(
  check: (() => Promise<VolumeStateReports>) | undefined,
  timeoutMs: number,
  logger: Logger,
): () => Promise<VolumeStateReports | undefined> {
  let running = false;
  return async () => {
    if (!check) return undefined;
    if (running) {
      logger.warn('the previous check of the volumes is still running; this heartbeat leaves their last report');
      return undefined;
    }
    running = true;
    const done = check()
      .catch((err: Error) => {
        logger.warn({ err: err.message }, 'could not check the volumes');
        return undefined;
      })
      .finally(() => {
        running = false;
      });
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), timeoutMs);
      timer.unref();
    });
    try {
      return await Promise.race([done, late]);
    } finally {
      clearTimeout(timer);
    }
  };
}

/** Free and total bytes of each volume root: the capacity the API reports for the node. */
async function capacity(roots: string[]): Promise<Record<string, { freeBytes: number; totalBytes: number }>> {
  const out: Record<string, { freeBytes: number; totalBytes: number }> = {};
  for (const root of roots) {
    const st = await fs.statfs(root).catch(() => null);
    if (st) out[root] = { freeBytes: st.bavail * st.bsize, totalBytes: st.blocks * st.bsize };
  }
  return out;
}

/** Registers the node (self-registration) and keeps `lastHeartbeatAt` fresh until stopped. */
export async function startHeartbeat(opts: {
  nodes: Pick<NodeRecords, 'heartbeat'>;
  nodeId: string;
  volumeRoots: string[];
  version: string;
  concurrency: number;
  logger: Logger;
  intervalMs?: number;
  /** The node's hooks file: re-read when it changed, its command names reported with each beat. */
  hookCommands?: HookCommands;
  /** What the node sees at each registered volume's host path, reported with each beat (coverage). */
  volumeStates?: () => Promise<VolumeStateReports>;
  /** How long a beat waits for the volume check before it goes out without one. */
  volumeCheckTimeoutMs?: number;
}): Promise<() => void> {
  const checkVolumes = volumeChecker(opts.volumeStates, opts.volumeCheckTimeoutMs ?? VOLUME_CHECK_TIMEOUT_MS, opts.logger);
  const beat = async () => {
    opts.hookCommands?.refresh(opts.logger);
    const volumeStates = await checkVolumes();
    const data = {
      volumeRoots: opts.volumeRoots,
      version: opts.version,
      lastHeartbeatAt: new Date(),
      capacity: { roots: await capacity(opts.volumeRoots), concurrency: opts.concurrency },
      ...(opts.hookCommands ? { hookCommands: opts.hookCommands.names() } : {}),
      ...(volumeStates ? { volumeStates } : {}),
    };
    await opts.nodes.heartbeat(opts.nodeId, data);
  };
  await beat();
  // One beat at a time: a volume root whose statfs hangs (a dead NFS server) must cost one
  // thread-pool thread, not a new one every interval until every fs call of the worker waits.
  let inFlight = false;
  const timer = setInterval(() => {
    if (inFlight) {
      opts.logger.warn('previous heartbeat still running; skipped one');
      return;
    }
    inFlight = true;
    beat()
      .catch((err: Error) => opts.logger.warn({ err: err.message }, 'heartbeat failed'))
      .finally(() => {
        inFlight = false;
      });
  }, opts.intervalMs ?? HEARTBEAT_INTERVAL_MS);
  timer.unref();
  return () => clearInterval(timer);
}
