import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ArchiveEntry, EntrySource } from '@cairn/core/archive/index.ts';
import { restoreChanges, sameEntry, signatureOf } from '@cairn/worker/node/restore-changes.ts';
import { applyStaged } from '@cairn/worker/node/staging.ts';
import { snapshotTree, type TreeEntry } from '../support/tree.ts';

const T0 = new Date('2026-01-02T03:04:05.678Z');

function write(root: string, files: Record<string, string>): void {
  for (const [rel, content] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
    fs.writeFileSync(path.join(root, rel), content);
    fs.utimesSync(path.join(root, rel), T0, T0);
  }
}

/** The index entries a backup of `dir` as volume `volume` would hold (what the comparison reads). */
function entriesOf(volume: string, dir: string): EntrySource {
  const out: ArchiveEntry[] = [];
  const walk = (rel: string) => {
    const full = rel ? path.join(dir, rel) : dir;
    const st = fs.lstatSync(full, { bigint: true });
    const type = st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : 'file';
    out.push({
      path: rel ? `${volume}/${rel}` : volume,
      type,
      size: type === 'file' ? Number(st.size) : 0,
      mode: Number(st.mode & 0o7777n),
      uid: 0,
      gid: 0,
      mtime: st.mtimeNs.toString(),
      ...(type === 'symlink' ? { linkTarget: fs.readlinkSync(full) } : {}),
      headerOffset: 0,
      dataOffset: 0,
    });
    if (type === 'dir') for (const name of fs.readdirSync(full).sort()) walk(rel ? `${rel}/${name}` : name);
  };
  walk('');
  return { batches: () => [out] };
}

/**
 * What really changed between two snapshots, in the comparison's terms (directories by type only);
 * unchanged counts only the entries the restore wrote (`restored`), not those a merge or a paths
 * restore left alone.
 */
function actualChanges(before: Record<string, TreeEntry>, after: Record<string, TreeEntry>, restored: (rel: string) => boolean) {
  const differs = (a: TreeEntry, b: TreeEntry) =>
    a.type !== b.type || (a.type === 'file' && (a.sha256 !== b.sha256 || a.mtimeNs !== b.mtimeNs)) || (a.type === 'symlink' && a.link !== b.link);
  const created = Object.keys(after).filter((p) => !(p in before));
  const deleted = Object.keys(before).filter((p) => !(p in after));
  const both = Object.keys(after).filter((p) => p in before);
  return {
    created: created.sort(),
    deleted: deleted.sort(),
    changed: both.filter((p) => differs(before[p]!, after[p]!)).sort(),
    unchanged: both.filter((p) => restored(p) && !differs(before[p]!, after[p]!)).length,
  };
}

const strip = (paths: string[]) => paths.map((p) => p.slice('vol/'.length)).sort();

describe('restore changes: the dry run predicts exactly what the swap does', () => {
  let base: string;
  let live: string;
  let staging: string;
  beforeEach(() => {
    base = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-changes-'));
    live = path.join(base, 'live');
    staging = path.join(base, 'staging');
    write(live, {
      'same.txt': 'same',
      'diff.txt': 'old content',
      'gone.txt': 'only live',
      'dir/keep': 'keep',
      'dir/old-only': 'only live',
      'olddir/a': 'a',
      'olddir/sub/b': 'b',
      'swap/c': 'live dir, backup file',
      file2dir: 'live file, backup dir',
      'touched.txt': 'same size',
    });
    fs.symlinkSync('x', path.join(live, 'link'));
    fs.mkdirSync(path.join(live, '.cairn-old-job.live')); // Cairn's own: never content
    write(staging, {
      'same.txt': 'same',
      'diff.txt': 'new',
      'dir/keep': 'keep',
      'dir/new': 'new',
      'new/deep/f': 'f',
      swap: 'file now',
      'file2dir/inner': 'dir now',
      'touched.txt': 'same size',
    });
    fs.utimesSync(path.join(staging, 'touched.txt'), T0, new Date(T0.getTime() + 1000));
    fs.symlinkSync('y', path.join(staging, 'link'));
  });
  afterEach(() => fs.rmSync(base, { recursive: true, force: true }));

  for (const c of [
    { name: 'replace, whole volume', mode: 'replace' as const, paths: undefined },
    { name: 'replace, chosen paths', mode: 'replace' as const, paths: ['dir', 'olddir', 'new/deep', 'swap'] },
    { name: 'merge', mode: 'merge' as const, paths: undefined },
  ]) {
    it(c.name, async () => {
      const ignore = (rel: string) => rel.startsWith('.cairn-');
      const predicted = await restoreChanges(entriesOf('vol', staging), [{ name: 'vol', live, paths: c.paths }], c.mode, 100);
      // Nothing was written by the comparison.
      const before = snapshotTree(live, { ignore });
      expect(snapshotTree(live, { ignore })).toEqual(before);

      const backup = snapshotTree(staging);
      const staged = c.paths ? pick(staging, c.paths) : staging;
      await applyStaged({ staging: staged, live, oldDir: path.join(base, 'old'), mode: c.mode, paths: c.paths });
      const inScope = (rel: string) => !c.paths || c.paths.some((r) => rel === r || rel.startsWith(`${r}/`));
      const actual = actualChanges(before, snapshotTree(live, { ignore }), (rel) => rel in backup && inScope(rel));

      expect(strip(predicted.samples.created)).toEqual(actual.created);
      expect(strip(predicted.samples.deleted)).toEqual(actual.deleted);
      expect(strip(predicted.samples.changed)).toEqual(actual.changed);
      expect(predicted.created).toBe(actual.created.length);
      expect(predicted.deleted).toBe(actual.deleted.length);
      expect(predicted.changed).toBe(actual.changed.length);
      expect(predicted.unchanged).toBe(actual.unchanged);
      // The cases are not trivial: each one creates, changes and leaves something.
      expect(predicted.created * predicted.changed * predicted.unchanged).toBeGreaterThan(0);
    });
  }

  it('names what replace deletes and merge keeps', async () => {
    const replace = await restoreChanges(entriesOf('vol', staging), [{ name: 'vol', live }], 'replace', 100);
    expect(replace.samples.deleted).toEqual(expect.arrayContaining(['vol/gone.txt', 'vol/olddir', 'vol/olddir/sub/b', 'vol/swap/c']));
    expect(replace.samples.deleted).not.toContain('vol/.cairn-old-job.live');
    const merge = await restoreChanges(entriesOf('vol', staging), [{ name: 'vol', live }], 'merge', 100);
    // A merge keeps what the backup lacks, except below a live directory it replaces by a file.
    expect(merge.samples.deleted).toEqual(['vol/swap/c']);
    expect(merge.samples.changed).toEqual(expect.arrayContaining(['vol/diff.txt', 'vol/touched.txt', 'vol/link', 'vol/swap', 'vol/file2dir']));
  });

  it('a missing volume directory: everything is created', async () => {
    const changes = await restoreChanges(entriesOf('vol', staging), [{ name: 'vol', live: null }], 'replace');
    expect(changes).toMatchObject({ changed: 0, deleted: 0, unchanged: 0 });
    expect(changes.created).toBe(Object.keys(snapshotTree(staging)).length);
  });

  it('keeps the counts whole and the samples short', async () => {
    write(live, Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`many/f${i}`, 'x'])));
    const changes = await restoreChanges(entriesOf('vol', staging), [{ name: 'vol', live }], 'replace', 5);
    expect(changes.deleted).toBe(30 + 1 + 7); // many/ and its files, plus the live-only entries above
    expect(changes.samples.deleted).toHaveLength(5);
  });
});

describe('restore changes: the entry comparison', () => {
  const file = { type: 'file' as const, size: 4, mtime: '1767322445678123456' };
  it('compares files by size and mtime to the microsecond', () => {
    expect(sameEntry(signatureOf(file), `f:4:${1767322445678123n}`)).toBe(true);
    expect(sameEntry(signatureOf(file), `f:5:${1767322445678123n}`)).toBe(false);
    expect(sameEntry(signatureOf(file), `f:4:${1767322445678124n}`)).toBe(false);
    expect(sameEntry(signatureOf(file), 'd')).toBe(false);
    expect(sameEntry(signatureOf(file), null)).toBe(false);
  });
  it('compares symlinks by target, directories by type, hard links as files', () => {
    expect(sameEntry(signatureOf({ type: 'symlink', size: 0, mtime: '0', linkTarget: 'a' }), 'l:a')).toBe(true);
    expect(sameEntry(signatureOf({ type: 'symlink', size: 0, mtime: '0', linkTarget: 'a' }), 'l:b')).toBe(false);
    expect(sameEntry(signatureOf({ type: 'dir', size: 0, mtime: '5' }), 'd')).toBe(true);
    expect(sameEntry(signatureOf({ type: 'hardlink', size: 0, mtime: '0', linkTarget: 'v/x' }), 'f:9:1')).toBe(true);
    expect(sameEntry(signatureOf({ type: 'hardlink', size: 0, mtime: '0', linkTarget: 'v/x' }), 'l:x')).toBe(false);
  });
});

/** A staging tree holding only the chosen paths (what unpack stages for a paths restore). */
function pick(staging: string, paths: string[]): string {
  const out = `${staging}-picked`;
  for (const rel of paths) {
    if (!fs.existsSync(path.join(staging, rel))) continue;
    fs.mkdirSync(path.dirname(path.join(out, rel)), { recursive: true });
    fs.cpSync(path.join(staging, rel), path.join(out, rel), { recursive: true, preserveTimestamps: true, verbatimSymlinks: true });
  }
  return out;
}
