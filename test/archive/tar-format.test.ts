/** Unit tests of the format pieces: tar headers, name bytes in JSON, time strings, excludes, run planning. */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { bytesToPath, pathToBytes, planRuns, selectEntries, type ArchiveEntry, type ArchiveIndex } from '@cairn/core/archive/index.ts';
import { compileExcludes } from '@cairn/core/archive/exclude-matcher.ts';
import { encodeTarHeaders, formatPaxTime, formatPaxTimeParts, mtimeString, parsePaxTime, type TarHeaderInput } from '@cairn/core/archive/tar-header.ts';
import { TarParser, type ParsedEntry } from '@cairn/core/archive/tar-parser.ts';

function parseHeaders(buf: Buffer, chunk = buf.length): ParsedEntry[] {
  const out: ParsedEntry[] = [];
  const p = new TarParser({ entry: (e) => out.push(e), data: () => {}, entryEnd: () => {} });
  for (let i = 0; i < buf.length; i += chunk) p.push(buf.subarray(i, i + chunk), i);
  return out;
}

describe('tar headers', () => {
  const cases: [string, TarHeaderInput][] = [
    ['short name', { path: Buffer.from('v/a.txt'), type: 'file', size: 0, mode: 0o644, uid: 0, gid: 0, mtimeNs: 1_700_000_000_000_000_000n }],
    ['ns mtime', { path: Buffer.from('v/b'), type: 'file', size: 0, mode: 0o4755, uid: 1000, gid: 1000, mtimeNs: 1_700_000_000_123_456_789n }],
    ['pre-1970 mtime', { path: Buffer.from('v/old'), type: 'dir', size: 0, mode: 0o1777, uid: 0, gid: 0, mtimeNs: -1_500_000_001n }],
    ['year 2300', { path: Buffer.from('v/future'), type: 'file', size: 0, mode: 0o600, uid: 0, gid: 0, mtimeNs: 10_413_792_000_000_000_001n }],
    ['split ustar name', { path: Buffer.from(`v/${'d'.repeat(120)}/${'f'.repeat(90)}`), type: 'file', size: 0, mode: 0o644, uid: 0, gid: 0, mtimeNs: 0n }],
    [
      'PAX name over 255 bytes',
      { path: Buffer.from(`v/${'x'.repeat(300)}/${'y'.repeat(250)}`), type: 'file', size: 0, mode: 0o644, uid: 0, gid: 0, mtimeNs: 0n },
    ],
    ['non-UTF-8 name', { path: Buffer.from([0x76, 0x2f, 0xff, 0xfe, 0x00 + 0x41]), type: 'file', size: 0, mode: 0o644, uid: 0, gid: 0, mtimeNs: 0n }],
    ['big ids', { path: Buffer.from('v/ids'), type: 'file', size: 0, mode: 0o644, uid: 4_000_000_000, gid: 3_000_000_000, mtimeNs: 0n }],
    [
      'long symlink target',
      { path: Buffer.from('v/l'), type: 'symlink', size: 0, mode: 0o777, uid: 0, gid: 0, mtimeNs: 0n, linkTarget: Buffer.from('t'.repeat(400)) },
    ],
    ['hard link', { path: Buffer.from('v/h'), type: 'hardlink', size: 0, mode: 0o644, uid: 0, gid: 0, mtimeNs: 0n, linkTarget: Buffer.from('v/a.txt') }],
  ];
  for (const [name, h] of cases) {
    it(`round-trips: ${name}`, () => {
      const bytes = Buffer.concat([encodeTarHeaders(h), Buffer.alloc(1024)]);
      expect(bytes.length % 512).toBe(0);
      for (const chunk of [bytes.length, 512, 7]) {
        const [e] = parseHeaders(bytes, chunk);
        expect(e!.path.equals(h.path)).toBe(true);
        expect([e!.type, e!.mode, e!.uid, e!.gid, e!.mtimeNs, e!.headerOffset, e!.dataOffset]).toEqual([
          h.type,
          h.mode,
          h.uid,
          h.gid,
          h.mtimeNs,
          0,
          bytes.length - 1024,
        ]);
        expect(e!.linkTarget.equals(h.linkTarget ?? Buffer.alloc(0))).toBe(true);
      }
    });
  }

  it('sizes past 8 GiB go in a PAX record (and base-256 in the ustar field)', () => {
    const size = 9 * 1024 ** 3 + 5;
    const hdr = encodeTarHeaders({ path: Buffer.from('v/huge'), type: 'file', size, mode: 0o644, uid: 0, gid: 0, mtimeNs: 0n });
    expect(hdr.toString('latin1')).toContain(` size=${size}\n`);
    let got = -1;
    const p = new TarParser({ entry: (e) => (got = e.size), data: () => {}, entryEnd: () => {} });
    p.push(Buffer.from(hdr), 0);
    expect(got).toBe(size);
  });

  it('a header with a bad checksum is corruption', () => {
    const hdr = Buffer.from(encodeTarHeaders({ path: Buffer.from('v/a'), type: 'file', size: 0, mode: 0o644, uid: 0, gid: 0, mtimeNs: 0n }));
    hdr[10] = 0x41;
    expect(() => parseHeaders(Buffer.concat([hdr, Buffer.alloc(1024)]))).toThrow(expect.objectContaining({ code: 'archive-corrupt' }));
  });

  it('PAX times keep nanoseconds, negative ones included', () => {
    for (const ns of [0n, 1n, 999_999_999n, 1_700_000_000_123_456_789n, -1n, -1_500_000_000n, -86_400_000_000_001n]) {
      expect(parsePaxTime(formatPaxTime(ns))).toBe(ns);
    }
    expect(formatPaxTime(1_700_000_000_500_000_000n)).toBe('1700000000.5');
    expect(formatPaxTime(-1_500_000_000n)).toBe('-1.5');
  });
});

describe('name bytes in the JSON index', () => {
  it('valid UTF-8 stays readable; any other bytes survive JSON unchanged', () => {
    expect(bytesToPath(Buffer.from('v/日本語-ü.txt'))).toBe('v/日本語-ü.txt');
    expect(pathToBytes('v/日本語-ü.txt').toString()).toBe('v/日本語-ü.txt');
    for (let i = 0; i < 200; i++) {
      const b = randomBytes(1 + (i % 40));
      const s = JSON.parse(JSON.stringify(bytesToPath(b))) as string;
      expect(pathToBytes(s).equals(b)).toBe(true);
    }
    expect(bytesToPath(Buffer.from([0x61, 0xff, 0x62]))).toBe('a\udcffb');
  });
});

describe('excludes', () => {
  it('matches like .gitignore: names anywhere, anchored paths, directories', () => {
    const m = compileExcludes(['*.tmp', '/build', 'node_modules/', 'logs/**/*.gz'])!;
    expect(['a.tmp', 'x/y/b.tmp', 'build', 'node_modules', 'src/node_modules', 'logs/2024/a.gz'].map(m)).toEqual([true, true, true, true, true, true]);
    expect(['a.txt', 'src/build', 'logs/a.txt', 'x/logs/2024/a.gz'].map(m)).toEqual([false, false, false, false]);
    expect(compileExcludes([])).toBeUndefined();
  });
});

describe('block runs', () => {
  const blocks = Array.from({ length: 10 }, (_, i) => ({
    compressedOffset: i * 100,
    compressedLength: 100,
    uncompressedOffset: i * 1024,
    uncompressedLength: 1024,
  }));
  const entry = (path: string, headerOffset: number, size: number): ArchiveEntry => ({
    path,
    type: 'file',
    size,
    mode: 0o644,
    uid: 0,
    gid: 0,
    mtime: '0',
    headerOffset,
    dataOffset: headerOffset + 512,
  });
  const index = {
    blocks,
    entries: [entry('v/a', 0, 100), entry('v/b', 1024, 3000), entry('v/c', 5120, 10), entry('v/d', 6144, 10)],
  } as unknown as ArchiveIndex;

  it('covers each entry with the blocks it spans, merging neighbours', () => {
    expect(planRuns(index, [index.entries[1]!])).toEqual([{ firstBlock: 1, lastBlock: 4, start: 1024, limit: 1024 + 512 + 3072 }]);
    expect(planRuns(index, [index.entries[0]!, index.entries[2]!])).toEqual([
      { firstBlock: 0, lastBlock: 0, start: 0, limit: 1024 },
      { firstBlock: 5, lastBlock: 5, start: 5120, limit: 6144 },
    ]);
    expect(planRuns(index, [index.entries[2]!, index.entries[3]!])).toEqual([{ firstBlock: 5, lastBlock: 6, start: 5120, limit: 7168 }]);
  });

  it('selects directories by prefix and refuses unknown paths', () => {
    const ix = { entries: [entry('v/d', 0, 0), entry('v/d/x', 512, 0), entry('v/dd', 1024, 0)] } as unknown as ArchiveIndex;
    expect(selectEntries(ix, ['v/d/']).selected.map((e) => e.path)).toEqual(['v/d', 'v/d/x']);
    expect(() => selectEntries(ix, ['v/nope'])).toThrow(expect.objectContaining({ code: 'not-found' }));
    expect(() => selectEntries(ix, ['v/../etc'])).toThrow(expect.objectContaining({ code: 'validation' }));
  });
});

describe('mtime without BigInt (the packer path)', () => {
  it('gives the same strings and headers as the nanosecond BigInt path', () => {
    const NS = 1_000_000_000n;
    for (const ns of [
      0n,
      1n,
      999_999_999n,
      1_000_000_000n,
      1_700_000_000_123_456_789n,
      1_700_000_000_000_000_000n,
      -1n,
      -1_500_000_001n,
      10_413_792_000_000_000_001n,
    ]) {
      const sec = ns >= 0n ? ns / NS : (ns - NS + 1n) / NS;
      const nsec = ns - sec * NS;
      expect(mtimeString(Number(sec), Number(nsec))).toBe(ns.toString());
      expect(formatPaxTimeParts(Number(sec), Number(nsec))).toBe(formatPaxTime(ns));
      const base = { path: Buffer.from('v/t'), type: 'file' as const, size: 0, mode: 0o644, uid: 0, gid: 0 };
      // Copies: both calls return views of one scratch buffer.
      const parts = Buffer.from(encodeTarHeaders({ ...base, mtimeSec: Number(sec), mtimeNsec: Number(nsec) }));
      expect(parts).toEqual(Buffer.from(encodeTarHeaders({ ...base, mtimeNs: ns })));
    }
  });
});
