/**
 * The flush a restore makes before its swap (flush.ts, restore.pipeline.ts flushStaging): one
 * syncfs per filesystem through coreutils' `sync --file-system`, and a failure that stops the
 * restore before the target changes.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FlushAhead, flushFilesystem } from '@cairn/worker/node/flush.ts';
import { flushStaging } from '@cairn/worker/node/restore.pipeline.ts';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-unit-flush-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

describe('flushing before the swap', () => {
  it('flushes an existing directory, and says why it cannot flush a missing one', async () => {
    fs.writeFileSync(path.join(root, 'f'), 'data');
    expect(await flushFilesystem(root)).toBeUndefined();
    expect(await flushFilesystem(path.join(root, 'missing'))).toMatch(/missing/);
  });

  it('falls back to a plain sync where `sync` lacks --file-system, and still reports its failures', async () => {
    const bin = fs.mkdtempSync(path.join(root, 'bin-'));
    const log = path.join(root, 'calls');
    // A sync that knows no options (as BSD's), logging how it was called.
    const script = [
      '#!/bin/sh',
      `echo "[$*]" >> '${log}'`,
      'if [ $# -gt 0 ]; then echo "sync: illegal option -- -" >&2; exit 1; fi',
      'if [ -n "$SYNC_EXIT" ]; then exit "$SYNC_EXIT"; fi',
      '',
    ];
    fs.writeFileSync(path.join(bin, 'sync'), script.join('\n'), { mode: 0o755 });
    const saved = process.env.PATH;
    process.env.PATH = `${bin}:${saved}`;
    try {
      expect(await flushFilesystem(root)).toBeUndefined();
      expect(fs.readFileSync(log, 'utf8')).toBe(`[--file-system ${root}]\n[]\n`);
      process.env.SYNC_EXIT = '1';
      expect(await flushFilesystem(root)).toMatch(/exit|failed/i);
    } finally {
      process.env.PATH = saved;
      delete process.env.SYNC_EXIT;
    }
  });

  it('flushes each filesystem once, and a failed flush fails the restore naming the volume', async () => {
    const a = fs.mkdtempSync(path.join(root, 'a-'));
    const b = fs.mkdtempSync(path.join(root, 'b-'));
    const flushed: string[] = [];
    await flushStaging(
      [
        { name: 'data', staging: a },
        { name: 'logs', staging: b },
      ],
      async (dir) => void flushed.push(dir),
    );
    expect(flushed).toEqual([a]);
    await expect(flushStaging([{ name: 'data', staging: a }], async () => 'I/O error')).rejects.toMatchObject({
      code: 'unavailable',
      message: 'volume data: the restored data could not be flushed to disk (I/O error); the target was not changed',
    });
  });

  it('flushes ahead while a restore of small files writes: one flush at a time, each after `every` more bytes, failures left to the last flush', async () => {
    const started: number[] = [];
    let finish: (() => void) | undefined;
    let fail = false;
    let written = 0;
    const ahead = new FlushAhead(
      () => {
        started.push(written);
        return new Promise<void>((resolve, reject) => {
          finish = () => (fail ? reject(new Error('I/O error')) : resolve());
        });
      },
      { every: 100, smallBelow: 50 },
    );
    // 1,000 bytes in 100 files: 10 bytes on average, below smallBelow.
    const wrote = (bytes: number): void => {
      written = bytes;
      ahead.wrote({ bytesDone: bytes, bytesTotal: 1000, filesTotal: 100 });
    };
    wrote(50);
    expect(started).toEqual([]);
    wrote(120);
    wrote(400); // a flush is running: none more
    expect(started).toEqual([120]);
    finish!();
    await ahead.settled();
    wrote(210); // less than `every` past the last start
    expect(started).toEqual([120]);
    wrote(230);
    expect(started).toEqual([120, 230]);
    fail = true;
    finish!();
    await expect(ahead.settled()).resolves.toBeUndefined();
    wrote(400);
    expect(started).toEqual([120, 230, 400]);
  });

  it('does not flush ahead when the files are large on average (the extractor writes those back itself) or there are none', async () => {
    let flushes = 0;
    const flush = async (): Promise<void> => void flushes++;
    const large = new FlushAhead(flush, { every: 100, smallBelow: 50 });
    // 1,000 bytes in 10 files: 100 on average.
    for (const bytesDone of [0, 200, 500, 1000]) large.wrote({ bytesDone, bytesTotal: 1000, filesTotal: 10 });
    const empty = new FlushAhead(flush, { every: 100, smallBelow: 50 });
    for (const bytesDone of [0, 200]) empty.wrote({ bytesDone, bytesTotal: 0, filesTotal: 0 });
    await large.settled();
    await empty.settled();
    expect(flushes).toBe(0);
  });
});
