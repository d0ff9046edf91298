import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Journal, applyStaged, recoverLeftovers, stagingNames } from '@cairn/worker/node/staging.ts';
import { snapshotTree } from '../support/tree.ts';

/** A tree snapshot where directories carry no mtime (renames into and out of them change it). */
const shape = (root: string) =>
  Object.fromEntries(Object.entries(snapshotTree(root)).map(([k, e]) => [k, e.type === 'dir' ? { ...e, mtimeNs: undefined } : e]));

function write(root: string, files: Record<string, string>): void {
  for (const [rel, content] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
    fs.writeFileSync(path.join(root, rel), content);
  }
}

describe('a failed apply is undone exactly (journal)', () => {
  let base: string;
  let live: string;
  let staging: string;
  let oldDir: string;
  beforeEach(() => {
    base = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-undo-'));
    live = path.join(base, 'live');
    staging = path.join(base, 'staging');
    oldDir = path.join(base, 'old');
    write(live, { x: 'old x', 'd/y': 'old y', keep: 'k', 'e/only-old': 'o' });
    fs.mkdirSync(path.join(live, 'emptydir'));
    fs.chmodSync(path.join(live, 'd'), 0o750);
    write(staging, { x: 'new x', 'd/y': 'new y', 'd/z': 'new z', 'e/only-new': 'n', 'fresh/deep/f': 'f' });
    fs.chmodSync(path.join(staging, 'd'), 0o700);
    fs.mkdirSync(path.join(staging, 'emptydir/child'), { recursive: true });
  });
  afterEach(() => fs.rmSync(base, { recursive: true, force: true }));

  for (const c of [
    { name: 'in-place replace', mode: 'replace' as const },
    { name: 'merge', mode: 'merge' as const },
    { name: 'replace of chosen paths', mode: 'replace' as const, paths: ['d/y', 'e', 'fresh/deep/f', 'emptydir'] },
  ]) {
    it(`${c.name}: live is exactly as before, staged entries back in staging, new entries gone`, async () => {
      const before = shape(live);
      const stagedBefore = shape(staging);
      const journal = new Journal();
      await applyStaged({ staging, live, oldDir, mode: c.mode, ...(c.paths ? { paths: c.paths } : {}), journal });
      expect(shape(live)).not.toEqual(before);
      expect(await journal.undo()).toBe(true);
      // The old rollback merged directories: staged-only entries (d/z, e/only-new, fresh/) stayed,
      // and a changed directory mode (d) was not put back.
      expect(shape(live)).toEqual(before);
      expect(shape(staging)).toEqual(stagedBefore);
    });
  }

  it('an undo step that cannot be done is reported, the others still run', async () => {
    const journal = new Journal();
    await applyStaged({ staging, live, oldDir, mode: 'merge', journal });
    // Someone removed a displaced file meanwhile.
    fs.rmSync(path.join(oldDir, 'x'));
    expect(await journal.undo()).toBe(false);
    expect(fs.readFileSync(path.join(live, 'd/y'), 'utf8')).toBe('old y');
    expect(fs.existsSync(path.join(live, 'd/z'))).toBe(false);
  });
});

describe('replace of chosen paths never writes through a symlink in the live volume', () => {
  it('refuses a path whose live parent is a symlink leading out of the volume, before moving anything', async () => {
    const base = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-escape-'));
    const live = path.join(base, 'live');
    const outside = path.join(base, 'outside');
    write(outside, { passwd: 'precious system file' });
    write(live, { a: 'a' });
    fs.symlinkSync(outside, path.join(live, 'etc'));
    const staging = path.join(base, 'staging');
    write(staging, { 'etc/passwd': 'attacker content', a: 'new a' });
    const journal = new Journal();
    await expect(applyStaged({ staging, live, oldDir: path.join(base, 'old'), mode: 'replace', paths: ['a', 'etc/passwd'], journal })).rejects.toMatchObject({
      code: 'unsafe-path',
    });
    expect(fs.readFileSync(path.join(outside, 'passwd'), 'utf8')).toBe('precious system file');
    expect(fs.readFileSync(path.join(live, 'a'), 'utf8')).toBe('a');
    expect(journal.steps).toEqual([]);
    fs.rmSync(base, { recursive: true, force: true });
  });
});

describe('in-place replace leaves Cairn directories alone', () => {
  it('keeps an earlier restore’s kept/old directory inside the volume', async () => {
    const base = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-inplace-'));
    const live = path.join(base, 'live');
    write(live, { f: 'old', '.cairn-kept-01OLDJOB.live/precious': 'only copy' });
    const staging = path.join(live, '.cairn-staging-JOB.live');
    write(staging, { f: 'new' });
    const oldDir = path.join(live, '.cairn-old-JOB.live');
    await applyStaged({ staging, live, oldDir, mode: 'replace' });
    expect(fs.readFileSync(path.join(live, 'f'), 'utf8')).toBe('new');
    expect(fs.readFileSync(path.join(live, '.cairn-kept-01OLDJOB.live/precious'), 'utf8')).toBe('only copy');
    expect(fs.existsSync(path.join(oldDir, '.cairn-kept-01OLDJOB.live'))).toBe(false);
    fs.rmSync(base, { recursive: true, force: true });
  });
});

describe('start-up recovery of restore leftovers', () => {
  let base: string;
  beforeEach(() => {
    base = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-recover2-'));
  });
  afterEach(() => fs.rmSync(base, { recursive: true, force: true }));

  it('does not take a sibling volume’s leftovers for its own (data vs app.data)', async () => {
    const data = path.join(base, 'data');
    const appData = path.join(base, 'app.data');
    write(data, { d: 'd' });
    // app.data was renamed aside mid-swap: its only copy is the old dir.
    const names = stagingNames('01JOBAAAAAAAAAAAAAAAAAAAAA', appData);
    write(path.join(base, names.old), { precious: 'keep me' });
    // Processing `data` first used to match `.cairn-old-<job>.app.data` by suffix and delete it.
    const result = await recoverLeftovers([data, appData], async () => false);
    expect(fs.readFileSync(path.join(appData, 'precious'), 'utf8')).toBe('keep me');
    expect(result.restored).toEqual([appData]);
    expect(result.removed).toEqual([]);
  });

  it('follows a symlinked volume path to where the restore put its leftovers', async () => {
    const real = path.join(base, 'real');
    fs.mkdirSync(real);
    const link = path.join(base, 'link');
    fs.symlinkSync(path.join(real, 'vol'), link); // dangling now: the volume was renamed aside
    const names = stagingNames('01JOBBBBBBBBBBBBBBBBBBBBBB', path.join(real, 'vol'));
    write(path.join(real, names.old), { precious: 'keep me' });
    write(path.join(real, names.staging), { partial: 'p' });
    const result = await recoverLeftovers([link], async () => false);
    expect(fs.readFileSync(path.join(link, 'precious'), 'utf8')).toBe('keep me');
    expect(result.restored).toEqual([path.join(real, 'vol')]);
    expect(fs.existsSync(path.join(real, names.staging))).toBe(false);
  });

  it('keeps (never removes) the displaced volume when the swap was cut short and the live dir re-appeared', async () => {
    const vol = path.join(base, 'vol');
    write(vol, { 'app-recreated': 'x' }); // the application re-created its directory
    const names = stagingNames('01JOBCCCCCCCCCCCCCCCCCCCCC', vol);
    write(path.join(base, names.old), { precious: 'the real data' });
    write(path.join(base, names.staging), { restored: 'never swapped in' });
    const result = await recoverLeftovers([vol], async () => false);
    expect(fs.readFileSync(path.join(base, names.kept, 'precious'), 'utf8')).toBe('the real data');
    expect(result.kept).toEqual([path.join(base, names.kept)]);
    // Started again: the kept dir is left alone.
    await recoverLeftovers([vol], async () => false);
    expect(fs.existsSync(path.join(base, names.kept, 'precious'))).toBe(true);
  });

  it('removes the displaced volume once the swap had completed (no staging left)', async () => {
    const vol = path.join(base, 'vol');
    write(vol, { restored: 'r' });
    const names = stagingNames('01JOBDDDDDDDDDDDDDDDDDDDDD', vol);
    write(path.join(base, names.old), { replaced: 'old' });
    const result = await recoverLeftovers([vol], async () => false);
    expect(fs.existsSync(path.join(base, names.old))).toBe(false);
    expect(result.removed).toEqual([path.join(base, names.old)]);
    expect(fs.readFileSync(path.join(vol, 'restored'), 'utf8')).toBe('r');
  });
});
