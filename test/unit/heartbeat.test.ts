import { describe, expect, it } from 'vitest';
import { createLogger, type NodeRecords } from '@cairn/core';
import { startHeartbeat } from '@cairn/worker/node/heartbeat.ts';

describe('node heartbeat', () => {
  it('never runs two beats at once (a hung beat must not pile up thread-pool work)', async () => {
    let calls = 0;
    const nodes: Pick<NodeRecords, 'heartbeat'> = {
      heartbeat: () => {
        calls++;
        // The first beat (at start) answers; every later one hangs, like a statfs on a dead NFS root.
        return calls === 1 ? Promise.resolve() : new Promise(() => {});
      },
    };
    const stop = await startHeartbeat({
      nodes,
      nodeId: 'n1',
      volumeRoots: [],
      version: 't',
      concurrency: 1,
      logger: createLogger({ level: 'silent', name: 't' }),
      intervalMs: 10,
    });
    await new Promise((r) => setTimeout(r, 150));
    stop();
    expect(calls).toBe(2);
  });
});
