/** Unit tests of the format pieces: tar headers, name bytes in JSON, time strings, excludes, run planning. */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { bytesToPath, pathToBytes, planRuns, selectEntries, type ArchiveEntry, type ArchiveIndex } from '@cairn/core/archive/index.ts';
import { compileExcludes } from '@cairn/core/archive/exclude-matcher.ts';
import {
  encodeTarHeaders,
  formatPaxTime,
  formatPaxTimeParts,
  mtimeString,
  parsePaxTime,
  plainFileHeaders,
  splitNs,
  splitNsString,
  type TarHeaderInput,
} from '@cairn/core/archive/tar-header.ts';
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

describe("plainFileHeaders (the extractor's quick check of a file written ahead)", () => {
  const file = (path: string | Buffer, over: Partial<TarHeaderInput> = {}): { h: TarHeaderInput; bytes: Buffer } => {
    const h: TarHeaderInput = {
      path: Buffer.from(path),
      type: 'file',
      size: 1234,
      mode: 0o644,
      uid: 1000,
      gid: 1000,
      mtimeNs: 1_700_000_000_123_456_789n,
      ...over,
    };
    return { h, bytes: Buffer.from(encodeTarHeaders(h)) };
  };
  const check = (bytes: Buffer, path: Buffer, size: number): boolean => {
    // Placed inside a larger buffer, as headers are inside a decoded block.
    const block = Buffer.concat([Buffer.alloc(512, 0x41), bytes, Buffer.alloc(700, 0x42)]);
    return plainFileHeaders(block, 512, 512 + bytes.length, path, size);
  };

  it('says yes to what the packer writes for a file: with and without a PAX mtime, with a split name, with big ids', () => {
    for (const { h, bytes } of [
      file('v/a.txt'),
      file('v/b', { mtimeNs: 1_700_000_000_000_000_000n }),
      file(`v/${'d'.repeat(120)}/${'f'.repeat(90)}`),
      file('v/ids', { uid: 4_000_000_000, gid: 3_000_000_000 }),
    ]) {
      expect(check(bytes, h.path, h.size)).toBe(true);
    }
  });

  it('says no when the path, the size or the type differ, or a PAX record could change them', () => {
    const { h, bytes } = file('v/a.txt');
    expect(check(bytes, Buffer.from('v/b.txt'), h.size)).toBe(false);
    expect(check(bytes, Buffer.from('v/a.tx'), h.size)).toBe(false);
    expect(check(bytes, Buffer.from('v/a.txt2'), h.size)).toBe(false);
    expect(check(bytes, h.path, h.size + 1)).toBe(false);
    const dir = file('v/a.txt', { type: 'dir', size: 0 });
    expect(check(dir.bytes, Buffer.from('v/a.txt/'), 0)).toBe(false);
    const link = file('v/a.txt', { type: 'hardlink', size: 0, linkTarget: Buffer.from('v/z') });
    expect(check(link.bytes, h.path, 0)).toBe(false);
    // The path in a PAX record (over 255 bytes, or not ASCII): left to the full parse.
    const long = file(`v/${'x'.repeat(300)}`);
    expect(check(long.bytes, long.h.path, long.h.size)).toBe(false);
    const split = file(`v/${'d'.repeat(120)}/${'f'.repeat(90)}`);
    expect(check(split.bytes, Buffer.from(`v/${'d'.repeat(120)}/${'g'.repeat(90)}`), split.h.size)).toBe(false);
    expect(check(split.bytes, Buffer.from(`v/${'e'.repeat(120)}/${'f'.repeat(90)}`), split.h.size)).toBe(false);
  });

  it('says no to altered or malformed PAX records and to headers of another length', () => {
    const { h, bytes } = file('v/a.txt');
    expect(bytes.length).toBe(1536);
    const renamed = Buffer.from(bytes);
    // "NN mtime=" becomes "NN path=" plus a byte: a record that would rename the entry.
    const at = renamed.indexOf(' mtime=', 512);
    renamed.write(' pathx=', at, 'latin1');
    expect(check(renamed, h.path, h.size)).toBe(false);
    const badLength = Buffer.from(bytes);
    badLength[512] = 0x39;
    expect(check(badLength, h.path, h.size)).toBe(false);
    expect(check(bytes.subarray(1024), h.path, h.size)).toBe(true);
    expect(check(Buffer.concat([bytes.subarray(0, 512), Buffer.alloc(512), bytes.subarray(1024)]), h.path, h.size)).toBe(false);
  });
});

describe('splitNsString', () => {
  it('splits an index mtime as splitNs does, with and without its BigInt path', () => {
    for (const ns of ['0', '5', '999999999', '1000000000', '1733500000123456789', '10413792000000000001', '-1', '-1500000001', '123456789012345678901234']) {
      expect(splitNsString(ns), ns).toEqual(splitNs(BigInt(ns)));
    }
  });
});

describe('TarParser.skipEntry', () => {
  it('passes over the entries the handler skips and parses the rest at their offsets, however the chunks fall', () => {
    const parts: Buffer[] = [];
    const starts: number[] = [];
    let at = 0;
    for (const [name, size] of [
      ['v/a', 700],
      ['v/b', 5000],
      ['v/c', 10],
    ] as const) {
      const h = Buffer.from(
        encodeTarHeaders({ path: Buffer.from(name), type: 'file', size, mode: 0o644, uid: 0, gid: 0, mtimeNs: 1_700_000_000_123_456_789n }),
      );
      const data = Buffer.alloc(Math.ceil(size / 512) * 512, name.charCodeAt(2));
      starts.push(at);
      parts.push(h, data);
      at += h.length + data.length;
    }
    const tar = Buffer.concat([...parts, Buffer.alloc(1024)]);
    for (const chunk of [tar.length, 512, 7]) {
      const seen: string[] = [];
      const asked: number[] = [];
      const p = new TarParser({
        entry: (e) => seen.push(`${e.path.toString()}@${e.headerOffset}`),
        data: () => {},
        entryEnd: () => {},
        skipEntry: (offset) => {
          asked.push(offset);
          return offset === starts[1] ? starts[2] : undefined;
        },
      });
      for (let i = 0; i < tar.length; i += chunk) p.push(tar.subarray(i, i + chunk), i);
      p.finish();
      expect(seen).toEqual([`v/a@${starts[0]}`, `v/c@${starts[2]}`]);
      expect(asked.slice(0, 3)).toEqual(starts);
      expect(p.ended).toBe(true);
    }
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
