import { describe, expect, it } from 'vitest';
import { createLogger } from '@cairn/core';
import type { JobView } from '@cairn/core/api/index.ts';
import { JobProgressHub, type JobEvent } from '@cairn/gateway/services/job-progress-hub.ts';

const logger = createLogger({ level: 'silent' });

function view(id: string, changes: Partial<JobView> = {}): JobView {
  return {
    id,
    type: 'backup',
    status: 'running',
    instanceId: 'i1',
    backupId: 'b1',
    targetInstanceId: null,
    nodeId: 'n1',
    queue: 'node.n1',
    params: {},
    requestedBy: 't1',
    progress: null,
    result: null,
    hooks: null,
    attempts: 1,
    error: null,
    errorCode: null,
    createdAt: '2026-12-05T09:00:00.000Z',
    startedAt: '2026-12-05T09:00:01.000Z',
    finishedAt: null,
    parentJobId: null,
    ...changes,
  };
}

const progress = (bytesDone: number) => ({ stage: 'packing', bytesDone, bytesTotal: 100, filesDone: 0, filesTotal: 0, percent: bytesDone, etaSeconds: null });

/** A hub over a table of current views; counts the reads and the ids they asked for. */
function hubOver(pollIntervalMs = 60_000) {
  const current = new Map<string, JobView>();
  const reads: string[][] = [];
  const hub = new JobProgressHub({
    pollIntervalMs,
    coalesceMs: 5,
    logger,
    async load(ids) {
      reads.push([...ids].sort());
      return new Map(ids.flatMap((id) => (current.has(id) ? [[id, current.get(id)!] as const] : [])));
    },
  });
  return { hub, current, reads };
}

function collect(events: AsyncGenerator<JobEvent>) {
  const seen: JobEvent[] = [];
  const done = (async () => {
    for await (const e of events) seen.push(e);
  })();
  return { seen, done };
}

describe('JobProgressHub', () => {
  it('serves every watcher of a job from one read per change, and forgets the job with its last watcher', async () => {
    const { hub, current, reads } = hubOver();
    current.set('j1', view('j1'));
    const a = collect(hub.watch(view('j1'), new AbortController().signal));
    const b = collect(hub.watch(view('j1'), new AbortController().signal));
    await expect.poll(() => hub.watchers('j1')).toBe(2);
    expect(hub.watchedJobs).toBe(1);
    await expect.poll(() => reads.length).toBeGreaterThan(0);
    const readsBefore = reads.length;

    current.set('j1', view('j1', { progress: progress(40) }));
    hub.notify('j1');
    hub.notify('j1');
    await expect.poll(() => [a.seen.length, b.seen.length]).toEqual([2, 2]);
    expect(reads.length - readsBefore).toBe(1);

    current.set('j1', view('j1', { status: 'succeeded', progress: progress(100), finishedAt: '2026-12-05T09:01:00.000Z' }));
    hub.notify('j1');
    await Promise.all([a.done, b.done]);
    for (const w of [a, b]) {
      expect(w.seen.map((e) => [e.event, e.job.status, e.job.progress?.bytesDone ?? null])).toEqual([
        ['state', 'running', null],
        ['progress', 'running', 40],
        ['state', 'succeeded', 100],
      ]);
      expect(w.seen.every((e) => e.json === JSON.stringify(e.job))).toBe(true);
    }
    // One serialization per change, shared by both streams.
    expect(a.seen[1]!.json).toBe(b.seen[1]!.json);
    expect(hub.watchers('j1')).toBe(0);
    expect(hub.watchedJobs).toBe(0);
  });

  it('delivers a change to hundreds of watchers in slices, letting other work run between them', async () => {
    const { hub, current } = hubOver();
    current.set('j1', view('j1'));
    const watchers = Array.from({ length: 200 }, () => collect(hub.watch(view('j1'), new AbortController().signal)));
    await expect.poll(() => hub.watchers('j1')).toBe(200);
    await expect.poll(() => watchers.every((w) => w.seen.length === 1)).toBe(true);
    // Timers that fire during the fan-out: with one synchronous loop over 200 watchers, none would.
    const turns: number[] = [];
    const counting = setInterval(() => turns.push(watchers.filter((w) => w.seen.length === 2).length), 0);
    current.set('j1', view('j1', { progress: progress(50) }));
    hub.notify('j1');
    await expect.poll(() => watchers.every((w) => w.seen.length === 2)).toBe(true);
    clearInterval(counting);
    expect(watchers.every((w) => w.seen[1]!.job.progress?.bytesDone === 50)).toBe(true);
    expect(turns.some((delivered) => delivered > 0 && delivered < 200)).toBe(true);
  });

  it('releases a watcher that goes away while the others keep watching', async () => {
    const { hub, current } = hubOver();
    current.set('j1', view('j1'));
    const leaving = new AbortController();
    const a = collect(hub.watch(view('j1'), leaving.signal));
    const b = collect(hub.watch(view('j1'), new AbortController().signal));
    await expect.poll(() => hub.watchers('j1')).toBe(2);
    leaving.abort();
    await a.done;
    expect(hub.watchers('j1')).toBe(1);
    current.set('j1', view('j1', { progress: progress(10) }));
    hub.notify('j1');
    await expect.poll(() => b.seen.length).toBe(2);
    expect(a.seen).toHaveLength(1);

    current.set('j1', view('j1', { status: 'failed', error: 'boom', errorCode: 'io' }));
    hub.notify('j1');
    await b.done;
    expect(b.seen.at(-1)).toMatchObject({ event: 'state', job: { status: 'failed', error: 'boom' } });
    expect(hub.watchedJobs).toBe(0);
  });

  it('reads all watched jobs in one periodic read when no notice comes', async () => {
    const { hub, current, reads } = hubOver(30);
    for (const id of ['j1', 'j2']) current.set(id, view(id));
    const one = collect(hub.watch(view('j1'), new AbortController().signal));
    const two = collect(hub.watch(view('j2'), new AbortController().signal));
    current.set('j1', view('j1', { status: 'succeeded' }));
    current.set('j2', view('j2', { status: 'cancelled' }));
    await Promise.all([one.done, two.done]);
    expect(one.seen.at(-1)!.job.status).toBe('succeeded');
    expect(two.seen.at(-1)!.job.status).toBe('cancelled');
    expect(reads.some((ids) => ids.length === 2)).toBe(true);
    expect(hub.watchedJobs).toBe(0);
  });

  it('ends the streams of a job that is gone, and never sends a watcher a job that ended at open', async () => {
    const { hub, current } = hubOver();
    current.set('j1', view('j1'));
    const w = collect(hub.watch(view('j1'), new AbortController().signal));
    await expect.poll(() => hub.watchers('j1')).toBe(1);
    current.delete('j1');
    hub.notify('j1');
    await w.done;
    expect(w.seen).toHaveLength(1);
    expect(hub.watchedJobs).toBe(0);

    const ended = collect(hub.watch(view('j2', { status: 'succeeded' }), new AbortController().signal));
    await ended.done;
    expect(ended.seen.map((e) => e.job.status)).toEqual(['succeeded']);
    expect(hub.watchedJobs).toBe(0);
  });

  it('keeps only the newest view for a watcher that is not reading', async () => {
    const { hub, current } = hubOver();
    current.set('j1', view('j1'));
    const events = hub.watch(view('j1'), new AbortController().signal);
    expect((await events.next()).value).toMatchObject({ event: 'state' });
    // The generator joins the job on its second step; changes queue behind it while nobody reads.
    const second = events.next();
    for (const done of [10, 20, 30]) {
      current.set('j1', view('j1', { progress: progress(done) }));
      hub.notify('j1');
      await new Promise((r) => setTimeout(r, 20));
    }
    expect((await second).value!.job.progress?.bytesDone).toBe(10);
    current.set('j1', view('j1', { progress: progress(50) }));
    hub.notify('j1');
    await new Promise((r) => setTimeout(r, 20));
    current.set('j1', view('j1', { progress: progress(60) }));
    hub.notify('j1');
    await new Promise((r) => setTimeout(r, 20));
    expect((await events.next()).value!.job.progress?.bytesDone).toBe(60);
    await events.return(undefined);
    expect(hub.watchedJobs).toBe(0);
  });
});
