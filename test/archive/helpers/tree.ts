/**
 * Test trees for the archive engine: a fixture with every case the engine must keep (names,
 * links, modes, times, sizes), and a byte-exact snapshot to compare a restored tree with.
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

export const IS_ROOT = process.getuid?.() === 0;

export interface SnapEntry {
  type: 'file' | 'dir' | 'symlink' | 'other';
  mode: number;
  uid: number;
  gid: number;
  mtimeNs: string;
  size?: number;
  link?: string;
  sha256?: string;
  /** Files sharing an inode get the same group number (by first path, in sorted order). */
  linkGroup?: number;
}

/** Paths are the raw name bytes as latin1 strings (lossless for non-UTF-8 names). */
export type Snapshot = Map<string, SnapEntry>;

export function fileSha(p: string | Buffer): string {
  const h = createHash('sha256');
  const fd = fs.openSync(p, 'r');
  const buf = Buffer.allocUnsafe(4 << 20);
  try {
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, null);
      if (n <= 0) break;
      h.update(buf.subarray(0, n));
    }
  } finally {
    fs.closeSync(fd);
  }
  return h.digest('hex');
}

/**
 * Snapshot of everything below `root`. `hashLimit`: files above it are compared by the caller
 * (multi-GiB sparse files), not hashed here.
 */
export function snapshot(root: string, opts: { hashLimit?: number; skip?: (rel: string) => boolean } = {}): Snapshot {
  const out: Snapshot = new Map();
  const inodes = new Map<bigint, number>();
  let groups = 0;
  const walk = (rel: Buffer): void => {
    const full = rel.length ? Buffer.concat([Buffer.from(`${root}/`), rel]) : Buffer.from(root);
    const st = fs.lstatSync(full, { bigint: true });
    const key = rel.toString('latin1');
    if (key && opts.skip?.(key)) return;
    const base = { mode: Number(st.mode & 0o7777n), uid: Number(st.uid), gid: Number(st.gid), mtimeNs: st.mtimeNs.toString() };
    if (st.isDirectory()) {
      if (key) out.set(key, { type: 'dir', ...base });
      const names = fs.readdirSync(full, { encoding: 'buffer' }).sort(Buffer.compare);
      for (const n of names) walk(rel.length ? Buffer.concat([rel, Buffer.from('/'), n]) : n);
    } else if (st.isSymbolicLink()) {
      out.set(key, { type: 'symlink', ...base, mode: 0, link: fs.readlinkSync(full, { encoding: 'buffer' }).toString('latin1') });
    } else if (st.isFile()) {
      const e: SnapEntry = { type: 'file', ...base, size: Number(st.size) };
      if (st.size <= BigInt(opts.hashLimit ?? Number.MAX_SAFE_INTEGER)) e.sha256 = fileSha(full);
      if (st.nlink > 1n) {
        let g = inodes.get(st.ino);
        if (g === undefined) inodes.set(st.ino, (g = ++groups));
        e.linkGroup = g;
      }
      out.set(key, e);
    } else {
      out.set(key, { type: 'other', ...base });
    }
  };
  walk(Buffer.alloc(0));
  return out;
}

/** Differences between two snapshots, as readable lines (empty when identical). */
export function diffSnapshots(want: Snapshot, got: Snapshot, opts: { ownership?: boolean } = {}): string[] {
  const diffs: string[] = [];
  for (const [p, w] of want) {
    const g = got.get(p);
    const name = JSON.stringify(Buffer.from(p, 'latin1').toString('utf8'));
    if (!g) {
      diffs.push(`missing ${name}`);
      continue;
    }
    const fields: (keyof SnapEntry)[] = ['type', 'mode', 'mtimeNs', 'size', 'link', 'sha256', 'linkGroup'];
    if (opts.ownership) fields.push('uid', 'gid');
    for (const f of fields) if (w[f] !== g[f]) diffs.push(`${name}: ${f} ${String(w[f])} != ${String(g[f])}`);
  }
  for (const p of got.keys()) if (!want.has(p)) diffs.push(`unexpected ${JSON.stringify(Buffer.from(p, 'latin1').toString('utf8'))}`);
  return diffs;
}

export function setTime(p: string, sec: bigint, nsec: number): void {
  // touch takes nanoseconds (Node's utimes stops at microseconds); -h: a symlink's own time.
  execFileSync('touch', ['-h', '-d', `@${sec}.${String(nsec).padStart(9, '0')}`, '--', String(p)]);
}

function setTimeBytes(p: Buffer, sec: bigint, nsec: number): void {
  // Non-UTF-8 names cannot pass through argv as JS strings: use a relative path from the parent.
  const dir = path.dirname(p.toString('latin1'));
  const base = p.subarray(p.lastIndexOf(0x2f) + 1);
  execFileSync(
    'perl',
    ['-e', 'exec "touch", "-h", "-d", $ARGV[1], "--", pack("H*", $ARGV[0])', base.toString('hex'), `@${sec}.${String(nsec).padStart(9, '0')}`],
    { cwd: dir },
  );
}

export interface Fixture {
  root: string;
  /** Relative paths (latin1 keys) of entries the packer must skip with a warning. */
  special: string[];
  /** Relative path and size of the sparse multi-GiB file, when made. */
  sparse?: { rel: string; size: number; markers: { offset: number; data: Buffer }[] };
  close(): Promise<void>;
}

/**
 * Builds the fixture volume. `sparseSize` adds a sparse file of that size (zeros, with a few
 * random markers) — multi-GiB in the full round trip.
 */
export async function buildFixture(root: string, opts: { sparseSize?: number } = {}): Promise<Fixture> {
  fs.mkdirSync(root, { recursive: true });
  const p = (rel: string): string => path.join(root, rel);
  const w = (rel: string, data: string | Buffer, mode = 0o644): void => {
    fs.writeFileSync(p(rel), data);
    fs.chmodSync(p(rel), mode);
  };
  w('plain.txt', 'hello, cairn\n');
  w('empty-file', '');
  w('unicode-ünïcødé-日本語-🎉.txt', 'unicode name\n');
  w('exact-512', randomBytes(512));
  w('exact-block-minus-1', randomBytes(64 * 1024 - 1));
  w('exact-block-plus-1', randomBytes(64 * 1024 + 1));
  w('random-3MiB.bin', randomBytes(3 * 1024 * 1024));
  w('text-1MiB.txt', Buffer.from('the quick brown fox jumps over the lazy dog\n'.repeat(24000)));
  fs.mkdirSync(p('empty-dir'));
  fs.mkdirSync(p('nested/a/b/c'), { recursive: true });
  w('nested/a/b/c/deep.txt', 'deep\n');
  // Names beyond ustar's 100/155 limits: a 250-byte component under a 200-byte directory.
  const longDir = `long-${'d'.repeat(195)}`;
  fs.mkdirSync(p(longDir));
  w(`${longDir}/${'f'.repeat(250)}`, 'long name\n');
  w(`${longDir}/${'é'.repeat(120)}`, 'long unicode name\n');
  // A name that is not UTF-8.
  const badName = Buffer.concat([Buffer.from(`${root}/bad-`), Buffer.from([0xff, 0xfe, 0x80]), Buffer.from('-name')]);
  fs.writeFileSync(badName, 'not utf-8\n');
  // Odd modes.
  w('setuid-file', '#!/bin/sh\n', 0o4755);
  w('setgid-file', 'x', 0o2711);
  w('noperm-file', 'secret\n', 0o000);
  w('group-exec', 'x', 0o710);
  fs.mkdirSync(p('sticky-dir'));
  fs.chmodSync(p('sticky-dir'), 0o1777);
  fs.mkdirSync(p('setgid-dir'));
  fs.chmodSync(p('setgid-dir'), 0o2775);
  fs.mkdirSync(p('readonly-dir'));
  w('readonly-dir/inside.txt', 'inside a read-only directory\n', 0o444);
  // Links.
  fs.symlinkSync('plain.txt', p('link-to-file'));
  fs.symlinkSync('does/not/exist', p('link-dangling'));
  fs.symlinkSync('/etc/hostname', p('link-absolute'));
  fs.symlinkSync('nested', p('link-to-dir'));
  fs.symlinkSync('../outside-the-volume', p('link-up'));
  w('hard-a', 'shared content\n');
  fs.linkSync(p('hard-a'), p('nested/hard-b'));
  fs.linkSync(p('hard-a'), p('hard-c'));
  if (IS_ROOT) {
    fs.chownSync(p('plain.txt'), 1234, 5678);
    fs.chownSync(p('nested/a'), 4321, 8765);
    fs.lchownSync(p('link-to-file'), 1111, 2222);
  }
  // Times with nanoseconds; one before 1970 and one past the ustar limit (year 2242).
  let n = 0;
  const times = (rel: string): void => setTime(p(rel), 1_600_000_000n + BigInt(n * 7919), (123_456_789 + n++ * 1_000_003) % 1_000_000_000);
  for (const rel of [
    'plain.txt',
    'empty-file',
    'unicode-ünïcødé-日本語-🎉.txt',
    'random-3MiB.bin',
    'nested/a/b/c/deep.txt',
    'link-to-file',
    'link-dangling',
    'hard-a',
    'setuid-file',
  ])
    times(rel);
  setTime(p('exact-512'), -86_400n * 365n, 987_654_321);
  setTime(p('text-1MiB.txt'), 9_000_000_000n, 1);
  setTimeBytes(badName, 1_500_000_000n, 42);

  const special: string[] = [];
  execFileSync('mkfifo', [p('a-fifo')]);
  special.push('a-fifo');
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(p('a-socket'), resolve));
  special.push('a-socket');
  if (IS_ROOT) {
    execFileSync('mknod', [p('a-char-device'), 'c', '1', '3']);
    special.push('a-char-device');
  }

  const fixture: Fixture = {
    root,
    special,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
  if (opts.sparseSize) {
    const rel = 'sparse.img';
    const markers = [0, Math.floor(opts.sparseSize / 2), opts.sparseSize - 4096].map((offset) => ({ offset, data: randomBytes(4096) }));
    const fd = fs.openSync(p(rel), 'w');
    fs.ftruncateSync(fd, opts.sparseSize);
    for (const m of markers) fs.writeSync(fd, m.data, 0, m.data.length, m.offset);
    fs.closeSync(fd);
    setTime(p(rel), 1_650_000_000n, 555_555_555);
    fixture.sparse = { rel, size: opts.sparseSize, markers };
  }
  // Directory times last: creating entries changes them.
  for (const rel of ['empty-dir', 'nested/a/b/c', 'nested/a', 'readonly-dir', 'sticky-dir']) times(rel);
  fs.chmodSync(p('readonly-dir'), 0o555);
  setTime(p('readonly-dir'), 1_700_000_000n, 999_999_999);
  setTime(root, 1_700_000_001n, 1);
  return fixture;
}

/** sha256 of the fixture's sparse file computed from what was written (zeros and markers). */
export function sparseSha(s: NonNullable<Fixture['sparse']>): string {
  const h = createHash('sha256');
  const zeros = Buffer.alloc(8 << 20);
  let pos = 0;
  for (const m of [...s.markers].sort((a, b) => a.offset - b.offset)) {
    while (pos < m.offset) {
      const n = Math.min(zeros.length, m.offset - pos);
      h.update(zeros.subarray(0, n));
      pos += n;
    }
    h.update(m.data);
    pos += m.data.length;
  }
  while (pos < s.size) {
    const n = Math.min(zeros.length, s.size - pos);
    h.update(zeros.subarray(0, n));
    pos += n;
  }
  return h.digest('hex');
}
