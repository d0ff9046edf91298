/**
 * Restoring chosen paths through a range reader reads only the blocks that hold them; the same
 * blocks serve a plain tar of one path (exportPathsAsTar).
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { entryEnd, exportPathsAsTar, unpackArchive, type ArchiveIndex, type PackResult } from '@cairn/core/archive/index.ts';
import { isCairnError } from '@cairn/core/errors.ts';
import { collect, countingRangeReader, packToFile } from './helpers/archive.ts';
import { diffSnapshots, snapshot, type Snapshot } from './helpers/tree.ts';

const MiB = 1024 * 1024;
const SPARSE = 3 * 1024 * MiB;

let work: string;
let vol: string;
let archive: string;
let packed: PackResult;
let source: Snapshot;

beforeAll(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-sel-'));
  vol = path.join(work, 'vol');
  fs.mkdirSync(path.join(vol, 'conf', 'sub'), { recursive: true });
  fs.writeFileSync(path.join(vol, 'a-first-name'), 'linked content\n');
  fs.writeFileSync(path.join(vol, 'b-random.bin'), randomBytes(24 * MiB));
  const fd = fs.openSync(path.join(vol, 'c-huge.sparse'), 'w');
  fs.ftruncateSync(fd, SPARSE);
  fs.closeSync(fd);
  fs.writeFileSync(path.join(vol, 'd-small.txt'), 'the one file we want back\n');
  fs.writeFileSync(path.join(vol, 'e-random.bin'), randomBytes(8 * MiB));
  fs.writeFileSync(path.join(vol, 'conf', 'app.ini'), '[app]\nname = cairn\n');
  fs.writeFileSync(path.join(vol, 'conf', 'sub', 'deep.json'), '{"deep": true}\n');
  fs.symlinkSync('../d-small.txt', path.join(vol, 'conf', 'small-link'));
  fs.linkSync(path.join(vol, 'a-first-name'), path.join(vol, 'conf', 'hard'));
  fs.mkdirSync(path.join(work, 'other'));
  fs.writeFileSync(path.join(work, 'other', 'x.txt'), 'other volume\n');
  archive = path.join(work, 'archive.tar.zst');
  packed = await packToFile(
    {
      volumes: [
        { name: 'vol', dir: vol },
        { name: 'other', dir: path.join(work, 'other') },
      ],
      codec: 'zstd',
      blockSize: MiB,
    },
    archive,
  );
  source = snapshot(vol, { hashLimit: 64 * MiB });
}, 180_000);

afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

/** Compressed bytes of the blocks overlapping the entries' tar bytes (computed independently). */
function bytesOfBlocksHolding(index: ArchiveIndex, paths: string[]): number {
  const wanted = index.entries.filter((e) => paths.includes(e.path));
  let total = 0;
  for (const b of index.blocks) {
    const end = b.uncompressedOffset + b.uncompressedLength;
    if (wanted.some((e) => e.headerOffset < end && entryEnd(e) > b.uncompressedOffset)) total += b.compressedLength;
  }
  return total;
}

function sub(s: Snapshot, prefix: string): Snapshot {
  return new Map([...s].filter(([k]) => k === prefix || k.startsWith(`${prefix}/`)));
}

describe('selective restore', () => {
  it('one small file from a multi-GiB archive reads only the blocks that hold it', async () => {
    expect(packed.index.totals.tarBytes).toBeGreaterThan(SPARSE);
    expect(packed.index.blocks.length).toBeGreaterThan(3000);
    const range = countingRangeReader(archive);
    const target = path.join(work, 'one');
    const r = await unpackArchive({ target, index: packed.index, paths: ['vol/d-small.txt'], source: { rangeReader: range.reader } });
    expect(r.filesWritten).toBe(1);
    expect(r.archiveVerified).toBe(false);
    expect(fs.readFileSync(path.join(target, 'vol', 'd-small.txt'), 'utf8')).toBe('the one file we want back\n');
    expect(fs.readdirSync(path.join(target, 'vol'))).toEqual(['d-small.txt']);
    const need = bytesOfBlocksHolding(packed.index, ['vol/d-small.txt']);
    expect(range.served()).toBe(need);
    expect(range.calls).toHaveLength(1);
    expect(range.served()).toBeLessThanOrEqual(2 * (MiB + 1024));
    expect(range.served()).toBeLessThan(packed.storedBytes / 10);
  });

  it('a directory, its symlink and a hard link whose first name is not selected', async () => {
    const range = countingRangeReader(archive);
    const target = path.join(work, 'dir');
    const r = await unpackArchive({ target, index: packed.index, paths: ['vol/conf/'], source: { rangeReader: range.reader } });
    expect(r.warnings).toEqual([]);
    const got = snapshot(path.join(target, 'vol'));
    // The hard link comes back as a file with its content (its first name stays unrestored).
    const want = sub(source, 'conf');
    const hard = { ...want.get('conf/hard')! };
    delete hard.linkGroup;
    want.set('conf/hard', hard);
    expect(diffSnapshots(want, sub(got, 'conf'))).toEqual([]);
    expect(got.has('a-first-name')).toBe(false);
    // It read the blocks of conf/ plus the one holding the hard link's content, nothing else.
    expect(range.served()).toBe(
      bytesOfBlocksHolding(packed.index, [...packed.index.entries.filter((e) => e.path.startsWith('vol/conf')).map((e) => e.path), 'vol/a-first-name']),
    );
    expect(range.served()).toBeLessThan(4 * MiB);
  });

  it('several paths are fetched as separate ranges', async () => {
    const range = countingRangeReader(archive);
    const target = path.join(work, 'two');
    await unpackArchive({ target, index: packed.index, paths: ['vol/d-small.txt', 'vol/conf/sub/deep.json'], source: { rangeReader: range.reader } });
    expect(fs.readFileSync(path.join(target, 'vol', 'conf', 'sub', 'deep.json'), 'utf8')).toBe('{"deep": true}\n');
    expect(fs.readFileSync(path.join(target, 'vol', 'd-small.txt'), 'utf8')).toBe('the one file we want back\n');
    expect(range.calls).toHaveLength(2);
    expect(range.served()).toBe(bytesOfBlocksHolding(packed.index, ['vol/d-small.txt', 'vol/conf/sub/deep.json']));
  });

  it('the whole archive through a range reader is read once and verified', async () => {
    const range = countingRangeReader(archive);
    const target = path.join(work, 'all');
    const seen: { bytesDone: number; bytesTotal: number; filesDone: number; filesTotal: number }[] = [];
    const r = await unpackArchive({ target, index: packed.index, source: { rangeReader: range.reader }, onProgress: (p) => seen.push(p) });
    expect(r.archiveVerified).toBe(true);
    const last = seen.at(-1)!;
    expect(last.bytesTotal).toBe(packed.logicalBytes);
    expect([last.bytesDone, last.filesDone]).toEqual([last.bytesTotal, last.filesTotal]);
    expect(last.filesTotal).toBe(packed.index.entries.filter((e) => e.type === 'file' || e.type === 'hardlink').length);
    // Read once: ranges of whole frames (several in flight, issue 17) that tile the archive exactly.
    const calls = [...range.calls].sort((a, b) => a[0]! - b[0]!);
    expect(calls[0]![0]).toBe(0);
    for (let i = 1; i < calls.length; i++) expect(calls[i]![0]).toBe(calls[i - 1]![1]! + 1);
    expect(calls.at(-1)![1]).toBe(packed.storedBytes - 1);
    const got = snapshot(path.join(target, 'vol'), { hashLimit: 64 * MiB });
    expect(diffSnapshots(source, got)).toEqual([]);
    expect(fs.statSync(path.join(target, 'vol', 'c-huge.sparse')).size).toBe(SPARSE);
    expect(fs.readFileSync(path.join(target, 'other', 'x.txt'), 'utf8')).toBe('other volume\n');
  });

  it('volumeDirs restores chosen volumes into directories of their own', async () => {
    const into = path.join(work, 'elsewhere', 'other-volume');
    const r = await unpackArchive({
      target: path.join(work, 'unused'),
      volumeDirs: { other: into },
      index: packed.index,
      source: { stream: fs.createReadStream(archive) },
    });
    expect(r.archiveVerified).toBe(true);
    expect(fs.readdirSync(into)).toEqual(['x.txt']);
    expect(fs.existsSync(path.join(work, 'unused'))).toBe(false);
  });

  it('a path that is not in the backup is refused before anything is read', async () => {
    const range = countingRangeReader(archive);
    const err = await unpackArchive({
      target: path.join(work, 'none'),
      index: packed.index,
      paths: ['vol/nope.txt'],
      source: { rangeReader: range.reader },
    }).catch((e: unknown) => e);
    expect(isCairnError(err, 'not-found')).toBe(true);
    expect(range.calls).toEqual([]);
  });
});

describe('exportPathsAsTar', () => {
  it('a directory as a plain tar that GNU tar extracts, from only its blocks', async () => {
    const range = countingRangeReader(archive);
    const tar = await collect(exportPathsAsTar(packed.index, range.reader, ['vol/conf']));
    expect(tar.length % 512).toBe(0);
    const out = path.join(work, 'export-dir');
    fs.mkdirSync(out);
    const tarFile = path.join(work, 'export.tar');
    fs.writeFileSync(tarFile, tar);
    execFileSync('tar', ['-xf', tarFile, '-C', out]);
    // The hard link's first name comes along so the link can be made.
    expect(fs.readdirSync(path.join(out, 'vol')).sort()).toEqual(['a-first-name', 'conf']);
    const got = snapshot(path.join(out, 'vol'));
    expect(diffSnapshots(sub(source, 'conf'), sub(got, 'conf'))).toEqual([]);
    expect(range.served()).toBeLessThan(4 * MiB);
  });

  it('one file, listed by tar exactly as the index has it', async () => {
    const range = countingRangeReader(archive);
    const tar = await collect(exportPathsAsTar(packed.index, range.reader, ['vol/d-small.txt']));
    const tarFile = path.join(work, 'one.tar');
    fs.writeFileSync(tarFile, tar);
    expect(execFileSync('tar', ['-tf', tarFile], { encoding: 'utf8' })).toBe('vol/d-small.txt\n');
    expect(execFileSync('tar', ['-xOf', tarFile], { encoding: 'utf8' })).toBe('the one file we want back\n');
    expect(range.served()).toBe(bytesOfBlocksHolding(packed.index, ['vol/d-small.txt']));
  });

  it('an unknown path fails the stream', async () => {
    const range = countingRangeReader(archive);
    expect(() => exportPathsAsTar(packed.index, range.reader, ['vol/missing'])).toThrow(/not in this backup/);
  });
});
