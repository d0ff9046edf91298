import { describe, expect, it } from 'vitest';
import { CairnError } from '@cairn/core';
import { EarlyCancels } from '@cairn/worker/cancel-listener.ts';
import { LockLostError, classify } from '@cairn/worker/job-outcome.ts';

const errno = (code: string) => Object.assign(new Error(`${code}: something`), { code });
const run = (opts: { aborted?: unknown; lastAttempt?: boolean } = {}) => {
  const ctrl = new AbortController();
  if ('aborted' in opts) ctrl.abort(opts.aborted);
  return { signal: ctrl.signal, lastAttempt: opts.lastAttempt ?? false };
};

describe('classifying a pipeline error', () => {
  it('fails at once on filesystem errors a retry cannot fix', () => {
    for (const code of ['EACCES', 'EPERM', 'EROFS', 'ENOTDIR', 'ELOOP', 'EXDEV']) {
      expect(classify(errno(code), run()), code).toMatchObject({ kind: 'failed', error: { code: 'internal', permanent: true } });
    }
    expect(classify(errno('ENOSPC'), run())).toMatchObject({ kind: 'failed', error: { code: 'insufficient-space' } });
  });

  it('retries connection losses and other unknown errors', () => {
    for (const err of [errno('ECONNRESET'), errno('EBUSY'), errno('EMFILE'), new Error('Connection terminated unexpectedly')]) {
      expect(classify(err, run()).kind).toBe('retry');
    }
    expect(classify(new CairnError('unavailable', 'S3 503', { permanent: false }), run()).kind).toBe('retry');
    expect(classify(errno('ECONNRESET'), run({ lastAttempt: true })).kind).toBe('failed');
  });

  it('keeps permanent Cairn errors permanent', () => {
    expect(classify(new CairnError('checksum-mismatch', 'x'), run()).kind).toBe('failed');
    expect(classify(new CairnError('unsafe-path', 'x'), run()).kind).toBe('failed');
  });

  it('a cancel wins; a lost lock is neither a cancel nor a failure', () => {
    expect(classify(errno('EACCES'), run({ aborted: 'cancelled by token t' }))).toMatchObject({
      kind: 'cancelled',
      error: { message: 'cancelled: cancelled by token t' },
    });
    expect(classify(new Error('stream destroyed'), run({ aborted: new LockLostError('J1') })).kind).toBe('lost');
  });
});

describe('cancels that arrive before the processor is registered', () => {
  it('are remembered once, for a while', () => {
    let now = 0;
    const early = new EarlyCancels(1000, 10, () => now);
    early.remember('J1', 'cancelled by token t');
    expect(early.take('J2')).toBeUndefined();
    expect(early.take('J1')).toBe('cancelled by token t');
    expect(early.take('J1')).toBeUndefined();
    early.remember('J3', 'r');
    now = 1001;
    expect(early.take('J3')).toBeUndefined();
  });

  it('stay bounded in number', () => {
    const early = new EarlyCancels(60_000, 3);
    for (let i = 0; i < 100; i++) early.remember(`J${i}`, 'r');
    expect(early.size).toBe(3);
    expect(early.take('J99')).toBe('r');
    expect(early.take('J0')).toBeUndefined();
  });
});
