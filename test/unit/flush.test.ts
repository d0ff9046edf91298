/**
 * The flush a restore makes before its swap (flush.ts, restore.pipeline.ts flushStaging): one
 * syncfs per filesystem through coreutils' `sync --file-system`, and a failure that stops the
 * restore before the target changes.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { flushFilesystem } from '@cairn/worker/node/flush.ts';
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
});
