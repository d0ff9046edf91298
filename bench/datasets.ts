/**
 * Benchmark data sets, generated once and cached (a marker file records the parameters so a
 * rerun with the same parameters reuses them).
 */
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';

export interface DataSet {
  name: string;
  dir: string;
  files: number;
  bytes: number;
}

const WORDS = (() => {
  // A fixed vocabulary of pseudo-words: text made from it compresses like prose, not like zeros.
  const rnd = randomBytes(4096 * 12);
  const words: Buffer[] = [];
  for (let i = 0; i < 4096; i++) {
    const len = 2 + (rnd[i * 12]! % 9);
    const w = Buffer.alloc(len + 1);
    for (let j = 0; j < len; j++) w[j] = 97 + (rnd[i * 12 + 1 + (j % 11)]! % 26);
    w[len] = rnd[i * 12 + 11]! % 7 === 0 ? 10 : 32;
    words.push(w);
  }
  return words;
})();

function fillText(buf: Buffer): void {
  const picks = randomBytes(Math.ceil(buf.length / 2) * 2);
  let pos = 0;
  let p = 0;
  while (pos < buf.length) {
    const w = WORDS[picks.readUInt16LE(p % (picks.length - 1)) & 4095]!;
    p += 2;
    pos += w.copy(buf, pos);
  }
}

/** "Half-compressible" content: alternating 32 KiB runs of random bytes and of word text. */
export function halfCompressible(size: number): Buffer {
  const buf = Buffer.allocUnsafe(size);
  const run = 32 * 1024;
  for (let off = 0; off < size; off += run) {
    const piece = buf.subarray(off, Math.min(size, off + run));
    if ((off / run) % 2 === 0) randomBytes(piece.length).copy(piece);
    else fillText(piece);
  }
  return buf;
}

function cached(dir: string, params: string, make: () => { files: number; bytes: number }): { files: number; bytes: number } {
  const marker = join(dir, '.cairn-bench.json');
  if (existsSync(marker)) {
    const m = JSON.parse(readFileSync(marker, 'utf8')) as { params: string; files: number; bytes: number };
    if (m.params === params) return m;
  }
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, 'data'), { recursive: true });
  const made = make();
  writeFileSync(marker, JSON.stringify({ params, ...made }));
  return made;
}

export function largeDataSet(root: string, fileCount: number, fileMiB: number): DataSet {
  const dir = join(root, `large-${fileCount}x${fileMiB}M`);
  const made = cached(dir, `large:${fileCount}:${fileMiB}`, () => {
    const chunk = 4 * 1024 * 1024;
    for (let i = 0; i < fileCount; i++) {
      const fd = openSync(join(dir, 'data', `blob-${i}.bin`), 'w');
      for (let done = 0; done < fileMiB * 1024 * 1024; done += chunk) writeSync(fd, halfCompressible(chunk));
      closeSync(fd);
    }
    return { files: fileCount, bytes: fileCount * fileMiB * 1024 * 1024 };
  });
  return { name: `large (${fileCount} × ${fileMiB} MiB)`, dir: join(dir, 'data'), ...made };
}

export function smallDataSet(root: string, fileCount: number, dirCount: number): DataSet {
  const dir = join(root, `small-${fileCount}f-${dirCount}d`);
  const made = cached(dir, `small:${fileCount}:${dirCount}`, () => {
    const pool = halfCompressible(64 * 1024 * 1024);
    const sizes = randomBytes(fileCount * 2);
    let bytes = 0;
    let poolPos = 0;
    for (let d = 0; d < dirCount; d++) mkdirSync(join(dir, 'data', `d${String(Math.floor(d / 32)).padStart(2, '0')}`, `sub${d}`), { recursive: true });
    for (let i = 0; i < fileCount; i++) {
      const d = i % dirCount;
      const size = 1024 + (sizes.readUInt16LE(i * 2) % (15 * 1024 + 1));
      if (poolPos + size > pool.length) poolPos = (poolPos * 7919) % (pool.length - 16 * 1024);
      writeFileSync(join(dir, 'data', `d${String(Math.floor(d / 32)).padStart(2, '0')}`, `sub${d}`, `file-${i}.dat`), pool.subarray(poolPos, poolPos + size));
      poolPos += size;
      bytes += size;
    }
    return { files: fileCount, bytes };
  });
  return { name: `small (${fileCount} files, ${dirCount} dirs)`, dir: join(dir, 'data'), ...made };
}

/** Many tiny files (1–512 bytes, 250 per directory): what memory does with the file count. */
export function manyDataSet(root: string, fileCount: number): DataSet {
  const dir = join(root, `many-${fileCount}f`);
  const made = cached(dir, `many:${fileCount}`, () => {
    const pool = randomBytes(512);
    let bytes = 0;
    for (let i = 0; i < fileCount; i++) {
      const sub = join(dir, 'data', `d${String(Math.floor(i / 250)).padStart(5, '0')}`);
      if (i % 250 === 0) mkdirSync(sub, { recursive: true });
      const size = 1 + ((i * 7) % 512);
      writeFileSync(join(sub, `file-with-a-moderately-long-name-${i}.txt`), pool.subarray(0, size));
      bytes += size;
    }
    return { files: fileCount, bytes };
  });
  return { name: `many (${fileCount} tiny files)`, dir: join(dir, 'data'), ...made };
}
