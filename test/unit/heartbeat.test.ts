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

describe('node heartbeat: volume states', () => {
  const logger = createLogger({ level: 'silent', name: 't' });

  it('reports the volume states with the beat, and beats without them while a check hangs, never running two checks', async () => {
    const beats: Array<Record<string, unknown>> = [];
    const nodes: Pick<NodeRecords, 'heartbeat'> = {
      heartbeat: async (_id, beat) => {
        beats.push(beat as unknown as Record<string, unknown>);
      },
    };
    let checks = 0;
    const volumeStates = () => {
      checks++;
      // The first check answers; every later one hangs, like a stat on a dead NFS volume.
      return checks === 1 ? Promise.resolve({ '/srv/a/x': { state: 'missing' as const, checkedAt: 'then' } }) : new Promise<never>(() => {});
    };
    const stop = await startHeartbeat({
      nodes,
      nodeId: 'n1',
      volumeRoots: [],
      version: 't',
      concurrency: 1,
      logger,
      intervalMs: 20,
      volumeStates,
      volumeCheckTimeoutMs: 10,
    });
    await new Promise((r) => setTimeout(r, 200));
    stop();
    expect(beats[0]!.volumeStates).toEqual({ '/srv/a/x': { state: 'missing', checkedAt: 'then' } });
    expect(beats.length).toBeGreaterThanOrEqual(4);
    expect(beats.slice(1).every((b) => !('volumeStates' in b))).toBe(true);
    expect(checks).toBe(2);
  });
});
