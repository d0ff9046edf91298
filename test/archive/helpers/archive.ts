/** Helpers around the archive engine for tests: files as sinks and sources, crafted archives. */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { gzipSync } from 'node:zlib';
import {
  ARCHIVE_FORMAT,
  ARCHIVE_FORMAT_VERSION,
  bytesToPath,
  packArchive,
  type ArchiveEntry,
  type ArchiveIndex,
  type Codec,
  type PackOptions,
  type PackResult,
  type RangeReader,
} from '@cairn/core/archive/index.ts';
import { TarParser } from '@cairn/core/archive/tar-parser.ts';
import { encodeTarHeaders, type TarHeaderInput } from '@cairn/core/archive/tar-header.ts';

export async function packToFile(options: PackOptions, file: string): Promise<PackResult> {
  const out = fs.createWriteStream(file);
  try {
    return await packArchive(options, out);
  } finally {
    out.destroy();
  }
}

/** A range reader over a file that counts the bytes it served. */
export function countingRangeReader(file: string): { reader: RangeReader; served: () => number; calls: [number, number][] } {
  let served = 0;
  const calls: [number, number][] = [];
  return {
    reader: async (start, end) => {
      calls.push([start, end]);
      const s = fs.createReadStream(file, { start, end });
      s.on('data', (c) => (served += (c as Buffer).length));
      return s;
    },
    served: () => served,
    calls,
  };
}

export async function collect(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  await pipeline(
    stream,
    new Writable({
      write(c: Buffer, _e, cb) {
        chunks.push(c);
        cb();
      },
    }),
  );
  return Buffer.concat(chunks);
}

/** Raw tar bytes for hand-made entries (for hostile archives). */
export function rawTar(entries: (Omit<TarHeaderInput, 'path' | 'linkTarget' | 'size'> & { path: string; linkTarget?: string; data?: Buffer })[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const data = e.data ?? Buffer.alloc(0);
    parts.push(
      Buffer.from(
        encodeTarHeaders({
          ...e,
          path: Buffer.from(e.path),
          linkTarget: e.linkTarget === undefined ? undefined : Buffer.from(e.linkTarget),
          size: e.type === 'file' ? data.length : 0,
        }),
      ),
    );
    if (e.type === 'file') {
      parts.push(data, Buffer.alloc((512 - (data.length % 512)) % 512));
    }
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

/**
 * Wraps raw tar bytes as a one-block archive with an index that matches it exactly, the way an
 * attacker who controls both objects would.
 */
/** `blockSize` (codec none only): the tar cut into blocks of that many bytes, each with its sha256. */
export function craftArchive(tar: Buffer, volumes: string[], codec: Codec = 'none', blockSize?: number): { archive: Buffer; index: ArchiveIndex } {
  const entries: ArchiveEntry[] = [];
  let hash = createHash('sha256');
  let size = 0;
  const parser = new TarParser({
    entry: (e) => {
      entries.push({
        path: bytesToPath(e.path),
        type: e.type === 'other' ? 'file' : e.type,
        size: e.size,
        mode: e.mode,
        uid: e.uid,
        gid: e.gid,
        mtime: e.mtimeNs.toString(),
        headerOffset: e.headerOffset,
        dataOffset: e.dataOffset,
        ...(e.type === 'symlink' || e.type === 'hardlink' ? { linkTarget: bytesToPath(e.linkTarget) } : {}),
      });
      hash = createHash('sha256');
      size = 0;
    },
    data: (c) => {
      hash.update(c);
      size += c.length;
    },
    entryEnd: (e) => {
      if (e.type === 'file') entries[entries.length - 1]!.sha256 = hash.digest('hex');
      void size;
    },
  });
  parser.push(tar, 0);
  const archive = codec === 'gzip' ? gzipSync(tar) : tar;
  const sha = createHash('sha256').update(archive).digest('hex');
  const index: ArchiveIndex = {
    format: ARCHIVE_FORMAT,
    version: ARCHIVE_FORMAT_VERSION,
    createdAt: new Date().toISOString(),
    meta: {},
    codec,
    level: 0,
    blockSize: tar.length,
    sha256: sha,
    volumes: volumes.map((name) => ({ name, entries: 0, files: 0, dirs: 0, symlinks: 0, hardlinks: 0, logicalBytes: 0, empty: false, warnings: 0 })),
    totals: {
      entries: entries.length,
      files: 0,
      dirs: 0,
      symlinks: 0,
      hardlinks: 0,
      logicalBytes: 0,
      tarBytes: tar.length,
      storedBytes: archive.length,
      blocks: 1,
      warnings: 0,
    },
    blocks: [
      {
        compressedOffset: 0,
        compressedLength: archive.length,
        uncompressedOffset: 0,
        uncompressedLength: tar.length,
        ...(codec === 'none' ? { sha256: sha } : {}),
      },
    ],
    entries,
    warnings: [],
  };
  if (blockSize !== undefined && codec === 'none') {
    index.blocks = [];
    for (let at = 0; at < tar.length; at += blockSize) {
      const piece = tar.subarray(at, Math.min(tar.length, at + blockSize));
      index.blocks.push({
        compressedOffset: at,
        compressedLength: piece.length,
        uncompressedOffset: at,
        uncompressedLength: piece.length,
        sha256: createHash('sha256').update(piece).digest('hex'),
      });
    }
    index.blockSize = blockSize;
    index.totals.blocks = index.blocks.length;
  }
  return { archive, index };
}

export interface TarListing {
  type: string;
  mode: string;
  size: number;
  path: string;
  link?: string;
}

function unescapeGnu(s: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c === '\\' && i + 1 < s.length) {
      const m = /^[0-7]{3}/.exec(s.slice(i + 1));
      if (m) {
        bytes.push(parseInt(m[0], 8));
        i += 3;
        continue;
      }
      const esc: Record<string, number> = { '\\': 0x5c, n: 0x0a, t: 0x09, a: 0x07, b: 0x08, f: 0x0c, r: 0x0d, v: 0x0b, ' ': 0x20 };
      const next = s[i + 1]!;
      if (esc[next] !== undefined) {
        bytes.push(esc[next]);
        i++;
        continue;
      }
    }
    bytes.push(c.charCodeAt(0));
  }
  return bytesToPath(Buffer.from(bytes));
}

/** GNU tar's verbose listing of an archive file (decompressed by `decompress` if given). */
export function gnuTarList(file: string, decompress?: 'zstd' | 'gzip'): TarListing[] {
  const args = ['--list', '--verbose', '--numeric-owner', '--quoting-style=escape', '--file', decompress === 'zstd' ? '-' : file];
  const out =
    decompress === 'zstd'
      ? execFileSync('sh', ['-c', `zstd -dc '${file}' | tar ${args.join(' ')}`], { env: { ...process.env, LC_ALL: 'C' }, maxBuffer: 256 << 20 })
      : execFileSync('tar', decompress === 'gzip' ? ['-z', ...args] : args, { env: { ...process.env, LC_ALL: 'C' }, maxBuffer: 256 << 20 });
  const rows: TarListing[] = [];
  for (const line of out.toString('latin1').split('\n')) {
    if (!line) continue;
    // "-rw-r--r-- 0/0   6 2001-02-03 04:05 name[ -> target| link to target]"
    const m = /^(\S)(\S{9}) \S+\s+(\d+) \S+ \S+ (.*)$/.exec(line);
    if (!m) throw new Error(`unparsed tar listing line: ${line}`);
    let name = m[4]!;
    let link: string | undefined;
    if (m[1] === 'l') [name, link] = name.split(' -> ') as [string, string];
    if (m[1] === 'h') [name, link] = name.split(' link to ') as [string, string];
    rows.push({
      type: m[1]!,
      mode: m[2]!,
      size: Number(m[3]),
      path: unescapeGnu(name).replace(/\/$/, ''),
      ...(link !== undefined ? { link: unescapeGnu(link) } : {}),
    });
  }
  return rows;
}
