/**
 * Hostile archives (SPEC §7): entries with '..', absolute paths, writes through symlinks, and
 * links pointing out of the volume are rejected — the restore fails and nothing outside the
 * target is touched.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { unpackArchive, type ArchiveIndex } from '@cairn/core/archive/index.ts';
import { isCairnError } from '@cairn/core/errors.ts';
import { craftArchive, rawTar } from './helpers/archive.ts';
import { snapshot, type Snapshot } from './helpers/tree.ts';

let work: string;
let outside: string;
let before: Snapshot;
let n = 0;

const T = 1_700_000_000_000_000_000n;
const base = { mode: 0o644, uid: 0, gid: 0, mtimeNs: T };
const dir = (p: string) => ({ ...base, mode: 0o755, type: 'dir' as const, path: p });
const file = (p: string, data = 'pwned\n') => ({ ...base, type: 'file' as const, path: p, data: Buffer.from(data) });
const symlink = (p: string, target: string) => ({ ...base, mode: 0o777, type: 'symlink' as const, path: p, linkTarget: target });
const hardlink = (p: string, target: string) => ({ ...base, type: 'hardlink' as const, path: p, linkTarget: target });

beforeAll(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-hostile-'));
  outside = path.join(work, 'outside');
  fs.mkdirSync(outside);
  fs.writeFileSync(path.join(outside, 'sentinel'), 'untouched\n');
  before = snapshot(work);
});

afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

let target: string;
beforeEach(() => {
  target = path.join(work, `target-${++n}`);
});

/** Everything in the work directory except the target is as it was. */
function expectOutsideUntouched(): void {
  const now = snapshot(work, { skip: (rel) => rel.startsWith('target-') });
  expect([...now.keys()]).toEqual([...before.keys()]);
  expect(now.get('outside/sentinel')).toEqual(before.get('outside/sentinel'));
  expect(fs.readdirSync(outside)).toEqual(['sentinel']);
}

async function restore(index: ArchiveIndex, archive: Buffer, opts: { volumeDirs?: Record<string, string> } = {}): Promise<unknown> {
  try {
    await unpackArchive({ target, index, source: { stream: Readable.from([archive]) }, ...opts });
  } catch (err) {
    return err;
  }
  return undefined;
}

/** Files written inside the target (none expected when the plan is rejected up front). */
function filesIn(p: string): string[] {
  if (!fs.existsSync(p)) return [];
  return fs.readdirSync(p, { recursive: true }) as string[];
}

describe('hostile archives are rejected', () => {
  const cases: [string, Parameters<typeof rawTar>[0]][] = [
    ['a ".." component', [dir('data'), file('data/ok.txt', 'fine'), file('data/../../outside/escaped.txt')]],
    ['a ".." volume', [dir('data'), file('../outside/escaped.txt')]],
    ['an absolute path', [dir('data'), file('ABS')]],
    ['a write through a symlink to an absolute path', [dir('data'), symlink('data/link', '/OUTSIDE'), file('data/link/escaped.txt')]],
    ['a write through a relative symlink', [dir('data'), dir('data/sub'), symlink('data/sub/up', '../../../outside'), file('data/sub/up/escaped.txt')]],
    ['a directory below a symlink', [dir('data'), symlink('data/link', '/OUTSIDE'), dir('data/link/newdir')]],
    ['a hard link to an absolute path', [dir('data'), hardlink('data/h', '/OUTSIDE/sentinel')]],
    ['a hard link out of the volume', [dir('data'), hardlink('data/h', 'data/../../outside/sentinel')]],
    ['a hard link through a symlink', [dir('data'), symlink('data/link', '/OUTSIDE'), hardlink('data/h', 'data/link/sentinel')]],
    ['a hard link into another volume', [dir('data'), dir('other'), file('other/f'), hardlink('data/h', 'other/f')]],
  ];
  for (const [name, entries] of cases) {
    it(name, async () => {
      // Absolute paths are made to point at the real outside directory of this run.
      const fixed = entries.map((e) => ({
        ...e,
        path: e.path === 'ABS' ? path.join(outside, 'abs.txt') : e.path,
        ...('linkTarget' in e && e.linkTarget ? { linkTarget: e.linkTarget.replace('/OUTSIDE', outside) } : {}),
      }));
      const { archive, index } = craftArchive(rawTar(fixed), ['data', 'other']);
      const err = await restore(index, archive);
      expect(isCairnError(err, 'unsafe-path'), String(err)).toBe(true);
      // Rejected from the index before the first write.
      expect(filesIn(target)).toEqual([]);
      expectOutsideUntouched();
    });
  }

  it('a tar entry that differs from what the index says is at that offset', async () => {
    // The index is made for a harmless tar; the stored tar has the escape at the same offsets.
    const harmless = rawTar([dir('data'), file('data/aaaaaaaaaaaaaaaaaaaaaaaaaaaa.txt')]);
    const evil = rawTar([dir('data'), file('data/../../outside/escaped.txt')]);
    expect(evil.length).toBe(harmless.length);
    const { index } = craftArchive(harmless, ['data']);
    const archive = evil;
    index.sha256 = '';
    index.blocks[0]!.sha256 = undefined;
    const err = await restore(index, archive);
    expect(isCairnError(err, 'archive-corrupt'), String(err)).toBe(true);
    expectOutsideUntouched();
  });

  it('a symlink already in the target is never written through (merge into a live tree)', async () => {
    fs.mkdirSync(path.join(target, 'data'), { recursive: true });
    fs.symlinkSync(outside, path.join(target, 'data', 'link'));
    const { archive, index } = craftArchive(rawTar([dir('data'), file('data/link/escaped.txt')]), ['data']);
    const err = await restore(index, archive);
    expect(isCairnError(err, 'unsafe-path'), String(err)).toBe(true);
    expectOutsideUntouched();
  });

  it('entries replace symlinks in their way instead of following them', async () => {
    // A symlink to a file outside, then a file and a hard link at that same path: the writes
    // land in the target (the symlink is removed first), never in the outside file.
    const { archive, index } = craftArchive(
      rawTar([
        dir('data'),
        symlink('data/s', path.join(outside, 'sentinel')),
        file('data/s', 'replaced\n'),
        symlink('data/t', path.join(outside, 'sentinel')),
        file('data/f', 'f\n'),
        hardlink('data/t', 'data/f'),
      ]),
      ['data'],
    );
    const err = await restore(index, archive);
    expect(err).toBeUndefined();
    expect(fs.readFileSync(path.join(target, 'data', 's'), 'utf8')).toBe('replaced\n');
    expect(fs.lstatSync(path.join(target, 'data', 't')).isFile()).toBe(true);
    expect(fs.readFileSync(path.join(target, 'data', 't'), 'utf8')).toBe('f\n');
    expectOutsideUntouched();
  });

  it('a directory entry replaces a symlink already in the target', async () => {
    fs.mkdirSync(path.join(target, 'data'), { recursive: true });
    fs.symlinkSync(outside, path.join(target, 'data', 'd'));
    const { archive, index } = craftArchive(rawTar([dir('data'), dir('data/d'), file('data/d/inside.txt', 'inside\n')]), ['data']);
    expect(await restore(index, archive)).toBeUndefined();
    expect(fs.lstatSync(path.join(target, 'data', 'd')).isDirectory()).toBe(true);
    expect(fs.readFileSync(path.join(target, 'data', 'd', 'inside.txt'), 'utf8')).toBe('inside\n');
    expectOutsideUntouched();
  });

  it('symlinks may point anywhere: only writing through them is refused', async () => {
    const { archive, index } = craftArchive(rawTar([dir('data'), symlink('data/abs', outside), symlink('data/up', '../../outside/sentinel')]), ['data']);
    expect(await restore(index, archive)).toBeUndefined();
    expect(fs.readlinkSync(path.join(target, 'data', 'abs'))).toBe(outside);
    expect(fs.readlinkSync(path.join(target, 'data', 'up'))).toBe('../../outside/sentinel');
    expectOutsideUntouched();
  });

  it('an index with an unsafe volume name is refused', async () => {
    const { archive, index } = craftArchive(rawTar([dir('data'), file('data/x')]), ['data']);
    index.volumes[0]!.name = '..';
    const err = await restore(index, archive);
    expect(isCairnError(err, 'unsafe-path'), String(err)).toBe(true);
    expectOutsideUntouched();
  });
});
