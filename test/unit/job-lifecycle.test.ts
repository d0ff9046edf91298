import { UnrecoverableError } from 'bullmq';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { CairnError, MemoryRecords, ProgressThrottle, type Job } from '@cairn/core';
import { JobLifecycle, type JobInvocation, type JobWork } from '@cairn/worker/job-lifecycle.ts';
import { LockLostError } from '@cairn/worker/job-outcome.ts';

/** A logger that keeps what it was given (pino writes JSON lines to the stream). */
function capturingLogger() {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'debug' }, { write: (l: string) => lines.push(JSON.parse(l)) });
  return { logger, lines };
}

async function setUp(status: Job['status'] = 'queued') {
  const records = new MemoryRecords();
  const job = await records.jobs.create({ id: 'job-1', type: 'restore', status, requestedBy: 'test', queue: 'node.n1' });
  const { logger, lines } = capturingLogger();
  const lifecycle = new JobLifecycle({ jobs: records.jobs, logger, nodeId: 'n1', settleDelayMs: 1, progressIntervalMs: 0 });
  return { records, job, lifecycle, lines };
}

function invocation(overrides: Partial<JobInvocation> = {}): JobInvocation {
  return { name: 'restore', record: { kind: 'existing', jobId: 'job-1' }, attempt: 1, attempts: 3, signal: new AbortController().signal, ...overrides };
}

const work = (run: JobWork['run'], onFailure?: JobWork['onFailure']): JobWork => ({ run, onFailure });

describe('job lifecycle: claim', () => {
  it('claims a queued job (running, attempt, node, start time) and records its result', async () => {
    const { records, lifecycle } = await setUp();
    let seen: Job | null = null;
    const outcome = await lifecycle.execute(
      invocation({ attempt: 2 }),
      work(async (run) => {
        seen = await records.jobs.get(run.jobId!);
        return { status: 'succeeded', result: { files: 3 } };
      }),
    );
    expect(outcome).toEqual({ status: 'succeeded', result: { files: 3 } });
    expect(seen).toMatchObject({ status: 'running', attempts: 2, nodeId: 'n1' });
    expect((seen as Job | null)?.startedAt).toBeInstanceOf(Date);
    const row = await records.jobs.get('job-1');
    expect(row).toMatchObject({ status: 'succeeded', result: { files: 3 }, error: null });
    expect(row?.finishedAt).toBeInstanceOf(Date);
  });

  it('does not run a job that already ended or was claimed away', async () => {
    for (const status of ['cancelled', 'succeeded', 'interrupted'] as const) {
      const { records, lifecycle } = await setUp(status);
      let ran = false;
      const outcome = await lifecycle.execute(
        invocation(),
        work(async () => {
          ran = true;
          return { status: 'succeeded', result: {} };
        }),
      );
      expect(outcome.status).toBe('skipped');
      expect(ran).toBe(false);
      expect((await records.jobs.get('job-1'))?.status).toBe(status);
    }
  });

  it('fails without retry when the Job row does not exist', async () => {
    const { lifecycle } = await setUp();
    await expect(
      lifecycle.execute(
        invocation({ record: { kind: 'existing', jobId: 'nope' } }),
        work(async () => ({ status: 'succeeded', result: {} })),
      ),
    ).rejects.toBeInstanceOf(UnrecoverableError);
  });

  it('creates a running record for work that records itself (sweeps), and settles it', async () => {
    const { records, lifecycle } = await setUp();
    const outcome = await lifecycle.execute(
      invocation({ record: { kind: 'create', job: { id: 'sweep-1', type: 'sweep', requestedBy: 'system', params: { kind: 'orphans' } } } }),
      work(async (run) => {
        expect((await records.jobs.get(run.jobId!))?.status).toBe('running');
        return { status: 'succeeded', result: { deleted: 0 }, returnValue: { sweepJobId: run.jobId } };
      }),
    );
    expect(outcome).toMatchObject({ status: 'succeeded', returnValue: { sweepJobId: 'sweep-1' } });
    expect(await records.jobs.get('sweep-1')).toMatchObject({ status: 'succeeded', type: 'sweep', result: { deleted: 0 } });
  });

  it('writes nothing for BullMQ-only work, and still maps a permanent error to UnrecoverableError', async () => {
    const { records, lifecycle } = await setUp();
    const before = records.calls.length;
    await expect(
      lifecycle.execute(
        invocation({ record: { kind: 'none' } }),
        work(async () => {
          throw new CairnError('validation', 'bad payload');
        }),
      ),
    ).rejects.toThrow(UnrecoverableError);
    expect(records.calls.slice(before)).toEqual([]);
  });
});

describe('job lifecycle: outcomes', () => {
  it('a permanent error fails the job with its code and message and is not retried', async () => {
    const { records, lifecycle } = await setUp();
    const err = await lifecycle
      .execute(
        invocation(),
        work(async () => {
          throw new CairnError('unsafe-path', '/x resolves outside the roots');
        }),
      )
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnrecoverableError);
    expect((err as Error).message).toBe('unsafe-path: /x resolves outside the roots');
    expect(await records.jobs.get('job-1')).toMatchObject({ status: 'failed', errorCode: 'unsafe-path', error: '/x resolves outside the roots' });
  });

  it('a transient error puts the job back to queued and is rethrown for BullMQ to retry; on the last attempt it fails', async () => {
    const { records, lifecycle } = await setUp();
    const flaky = work(async () => {
      throw Object.assign(new Error('connect ECONNRESET'), { code: 'ECONNRESET' });
    });
    const err = await lifecycle.execute(invocation({ attempt: 1 }), flaky).catch((e: unknown) => e);
    expect(err).not.toBeInstanceOf(UnrecoverableError);
    expect(err).toMatchObject({ code: 'unavailable', permanent: false });
    expect(await records.jobs.get('job-1')).toMatchObject({
      status: 'queued',
      errorCode: 'unavailable',
      error: 'attempt 1 failed, will retry: connect ECONNRESET',
    });

    await expect(lifecycle.execute(invocation({ attempt: 3 }), flaky)).rejects.toBeInstanceOf(UnrecoverableError);
    expect(await records.jobs.get('job-1')).toMatchObject({ status: 'failed', attempts: 3, error: 'connect ECONNRESET' });
  });

  it('a cancel ends the job cancelled; a lost lock changes nothing', async () => {
    const { records, lifecycle } = await setUp();
    const ctrl = new AbortController();
    await expect(
      lifecycle.execute(
        invocation({ signal: ctrl.signal }),
        work(async (run) => {
          ctrl.abort('cancelled by token t1');
          run.signal.throwIfAborted();
          return { status: 'succeeded', result: {} };
        }),
      ),
    ).rejects.toBeInstanceOf(UnrecoverableError);
    expect(await records.jobs.get('job-1')).toMatchObject({ status: 'cancelled', errorCode: 'cancelled', error: 'cancelled: cancelled by token t1' });

    const second = await setUp();
    const lost = new AbortController();
    let cleaned = false;
    await expect(
      second.lifecycle.execute(
        invocation({ signal: lost.signal }),
        work(
          async () => {
            lost.abort(new LockLostError('job-1'));
            throw new Error('stream destroyed');
          },
          async () => {
            cleaned = true;
            return undefined;
          },
        ),
      ),
    ).rejects.not.toBeInstanceOf(UnrecoverableError);
    expect(cleaned).toBe(false);
    expect((await second.records.jobs.get('job-1'))?.status).toBe('running');
  });

  it('a work that ends cancelled without an error (its backup was deleted) is recorded cancelled', async () => {
    const { records, lifecycle } = await setUp();
    const outcome = await lifecycle.execute(
      invocation(),
      work(async () => ({ status: 'cancelled', reason: 'backup is deleting' })),
    );
    expect(outcome.status).toBe('cancelled');
    expect(await records.jobs.get('job-1')).toMatchObject({ status: 'cancelled', error: 'backup is deleting', errorCode: 'cancelled' });
  });

  it('runs onFailure before the terminal write and records its amended message; a failing onFailure keeps the job error', async () => {
    const { records, lifecycle, lines } = await setUp();
    let statusDuringCleanup: string | undefined;
    await expect(
      lifecycle.execute(
        invocation(),
        work(
          async () => {
            throw new CairnError('archive-corrupt', 'block 3 checksum mismatch');
          },
          async (failure) => {
            statusDuringCleanup = (await records.jobs.get('job-1'))?.status;
            return { ...failure, error: new CairnError(failure.error.code, `${failure.error.message}; previous content kept at /v/.kept`) };
          },
        ),
      ),
    ).rejects.toThrow(/kept at/);
    expect(statusDuringCleanup).toBe('running');
    expect((await records.jobs.get('job-1'))?.error).toBe('block 3 checksum mismatch; previous content kept at /v/.kept');

    const second = await setUp();
    await expect(
      second.lifecycle.execute(
        invocation(),
        work(
          async () => {
            throw new CairnError('no-data', 'nothing to back up');
          },
          async () => {
            throw new Error('rm failed');
          },
        ),
      ),
    ).rejects.toThrow('no-data: nothing to back up');
    expect(await second.records.jobs.get('job-1')).toMatchObject({ status: 'failed', error: 'nothing to back up' });
    expect(second.lines.some((l) => l.msg === 'cleaning up after a failed job failed' && l.err === 'rm failed')).toBe(true);
    expect(lines.length).toBeGreaterThan(0);
  });
});

describe('job lifecycle: terminal writes under a failing database', () => {
  const failsWith = (records: MemoryRecords, times: number) =>
    work(async () => {
      // After the claim: the next `times` writes of the job's outcome fail like a dropped connection.
      for (let i = 0; i < times; i++) records.failNext('jobs.transition', new Error('Connection terminated unexpectedly'));
      throw new CairnError('insufficient-space', 'need 2.0 GiB, available 1.0 GiB');
    });

  it('retries a failed terminal write and records the real error', async () => {
    const { records, lifecycle, lines } = await setUp();
    await expect(lifecycle.execute(invocation(), failsWith(records, 2))).rejects.toThrow('insufficient-space: need 2.0 GiB, available 1.0 GiB');
    expect(await records.jobs.get('job-1')).toMatchObject({ status: 'failed', errorCode: 'insufficient-space', error: 'need 2.0 GiB, available 1.0 GiB' });
    expect(lines.filter((l) => l.msg === 'recording the job outcome failed; trying again' && l.jobId === 'job-1')).toHaveLength(2);
  });

  it('when every try fails, logs the job id with its real error and hands that error to BullMQ', async () => {
    const { records, lifecycle, lines } = await setUp();
    const err = await lifecycle.execute(invocation(), failsWith(records, 6)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnrecoverableError);
    expect((err as Error).message).toBe('insufficient-space: need 2.0 GiB, available 1.0 GiB');
    const logged = lines.find((l) => l.msg === 'could not record the job outcome');
    expect(logged).toMatchObject({ jobId: 'job-1', to: 'failed', jobOutcome: 'need 2.0 GiB, available 1.0 GiB', err: 'Connection terminated unexpectedly' });
    // Left for the sweep, which copies BullMQ's failedReason onto it.
    expect((await records.jobs.get('job-1'))?.status).toBe('running');
  });

  it('a success that cannot be recorded is a transient error (BullMQ retries; the next run finds the work done)', async () => {
    const { records, lifecycle } = await setUp();
    const err = await lifecycle
      .execute(
        invocation(),
        work(async () => {
          for (let i = 0; i < 6; i++) records.failNext('jobs.transition');
          return { status: 'succeeded', result: {} };
        }),
      )
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'unavailable', permanent: false });
    expect(err).not.toBeInstanceOf(UnrecoverableError);
  });
});

describe('progress', () => {
  it('lands in order, newest last, and is drained before the terminal write', async () => {
    const { records, lifecycle } = await setUp();
    const published: number[] = [];
    let slow = true;
    await lifecycle.execute(
      invocation({
        publishProgress: async (p) => {
          // The first write is slow: later values must wait behind it, and only the newest is kept.
          if (slow) {
            slow = false;
            await new Promise((r) => setTimeout(r, 30));
          }
          published.push(p.bytesDone);
        },
      }),
      work(async (run) => {
        for (let i = 1; i <= 50; i++) run.progress('restoring', { bytesDone: i, bytesTotal: 50, filesDone: i, filesTotal: 50 });
        return { status: 'succeeded', result: {} };
      }),
    );
    expect(published[0]).toBe(1);
    expect(published.at(-1)).toBe(50);
    expect([...published].sort((a, b) => a - b)).toEqual(published);
    expect(published.length).toBeLessThan(50);
    const row = await records.jobs.get('job-1');
    expect(row?.progress).toMatchObject({ stage: 'restoring', bytesDone: 50, percent: 100 });
    const calls = records.calls.filter((c) => c === 'jobs.setProgress' || c === 'jobs.transition');
    expect(calls.at(-1)).toBe('jobs.transition');
  });

  it('a failing progress write never fails the job', async () => {
    const throttle = new ProgressThrottle(() => Promise.reject(new Error('redis down')), 0);
    throttle.update('archiving', { bytesDone: 1, bytesTotal: 2, filesDone: 1, filesTotal: 2 });
    await expect(throttle.drain()).resolves.toBeUndefined();
  });

  it('writes the last of a burst of updates once the interval has passed, without waiting for another update', async () => {
    const written: number[] = [];
    const throttle = new ProgressThrottle((p) => void written.push(p.bytesDone), 50);
    for (const bytesDone of [1, 2, 3]) throttle.update('archiving', { bytesDone, bytesTotal: 10, filesDone: 0, filesTotal: 1 });
    expect(written).toEqual([1]);
    await new Promise((r) => setTimeout(r, 150));
    expect(written).toEqual([1, 3]);
    await throttle.drain();
    expect(written).toEqual([1, 3]);
  });
});
