import fs from 'node:fs/promises';
import type { Logger, NodeRecords, VolumeStateReports } from '@cairn/core';
import type { HookCommands } from './hooks/hook-commands.ts';

export const HEARTBEAT_INTERVAL_MS = 10_000;

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
}): Promise<() => void> {
  const beat = async () => {
    opts.hookCommands?.refresh(opts.logger);
    // A failed check of the volumes leaves the last report standing; the beat itself still goes out.
    const volumeStates = await opts.volumeStates?.().catch((err: Error) => {
      opts.logger.warn({ err: err.message }, 'could not check the volumes');
      return undefined;
    });
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
