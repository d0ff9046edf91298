/**
 * The pre-scan: walks a volume with synchronous readdir + lstat (no symlink is ever followed)
 * and lists what will be archived, in archive order. It gives the progress totals, and the
 * lstat results double as the "before" half of GNU tar's changed-while-read check.
 *
 * Items keep only the fields the packer needs (a BigIntStats object per file would cost
 * hundreds of bytes and most of the garbage collector's time on 100k files).
 */
import { lstatSync, readdirSync, statSync, type BigIntStats } from 'node:fs';
import { CairnError } from '../errors.ts';
import type { WarningCode } from './archive-types.ts';
import { compileExcludes } from './exclude-matcher.ts';
import { bytesToPath } from './path-bytes.ts';

export interface DirNode {
  /** Filesystem path bytes. */
  fs: Buffer;
  /** Archive path bytes ('<volume>/<rel>'). */
  arc: Buffer;
  /** Path relative to the volume (for excludes; '' for the root). */
  rel: string;
}

export const enum Kind {
  File,
  Dir,
  Symlink,
  Hardlink,
}

export interface ScanItem {
  /** Directory holding the item; undefined for a volume root. */
  parent: DirNode | undefined;
  /** Name bytes as a latin1 string (a third of a Buffer's memory; 100k items add up). */
  name: string | undefined;
  /** For directories: the node their children hang from. */
  node: DirNode | undefined;
  kind: Kind;
  vol: number;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtimeNs: bigint;
  /** ctime and inode as Node's plain Stats has them, for comparing with a later fstat. */
  ctimeMs: number;
  ino: number;
  /** For a hard link: the first name of the inode. */
  linkTo: ScanItem | undefined;
  /** Set once the item's headers are in the stream. */
  emitted?: boolean;
  /** A later name of the inode stored as the file because this one could not be read. */
  replacement?: ScanItem;
}

export interface ScanWarning {
  vol: number;
  path: string;
  code: WarningCode;
  message: string;
}

export interface ScanResult {
  items: ScanItem[];
  filesTotal: number;
  bytesTotal: number;
}

const SLASH = Buffer.from('/');

/** Milliseconds computed exactly as Node's Stats computes mtimeMs/ctimeMs from the timespec. */
export function msOf(ns: bigint): number {
  let sec = ns / 1_000_000_000n;
  let nsec = ns % 1_000_000_000n;
  if (nsec < 0n) {
    sec -= 1n;
    nsec += 1_000_000_000n;
  }
  return Number(sec) * 1000 + Number(nsec) / 1_000_000;
}

export function errCode(err: unknown): string {
  return (err as NodeJS.ErrnoException).code ?? 'EIO';
}

function item(parent: DirNode | undefined, name: Buffer | undefined, kind: Kind, vol: number, st: BigIntStats): ScanItem {
  return {
    parent,
    name: name?.toString('latin1'),
    node: undefined,
    kind,
    vol,
    mode: Number(st.mode & 0o7777n),
    uid: Number(st.uid),
    gid: Number(st.gid),
    size: kind === Kind.File ? Number(st.size) : 0,
    mtimeNs: st.mtimeNs,
    ctimeMs: msOf(st.ctimeNs),
    ino: Number(st.ino),
    linkTo: undefined,
  };
}

export function scanVolumes(
  volumes: readonly { name: string; dir: string; excludes: string[] }[],
  warn: (w: ScanWarning) => void,
  checkAbort: () => void,
): ScanResult {
  const out: ScanResult = { items: [], filesTotal: 0, bytesTotal: 0 };
  volumes.forEach((v, vol) => scanVolume(v, vol, out, warn, checkAbort));
  return out;
}

function scanVolume(v: { name: string; dir: string; excludes: string[] }, vol: number, out: ScanResult, warn: (w: ScanWarning) => void, checkAbort: () => void): void {
  const exclude = compileExcludes(v.excludes);
  const rootFs = Buffer.from(v.dir);
  let st: BigIntStats;
  try {
    // The volume path itself may be a symlink (the caller resolved and checked it).
    st = statSync(rootFs, { bigint: true });
  } catch (err) {
    throw new CairnError('volume-missing', `volume ${v.name}: ${v.dir} is not readable (${errCode(err)})`);
  }
  if (!st.isDirectory()) throw new CairnError('volume-missing', `volume ${v.name}: ${v.dir} is not a directory`);
  const root = item(undefined, undefined, Kind.Dir, vol, st);
  root.node = { fs: rootFs, arc: Buffer.from(v.name), rel: '' };
  // Hard links are only detected within a volume: volumes may be restored on their own.
  const seen = new Map<string, ScanItem>();
  const stack: ScanItem[] = [root];
  let pathBuf = Buffer.alloc(4096);
  while (stack.length) {
    checkAbort();
    const dirItem = stack.pop()!;
    out.items.push(dirItem);
    const dir = dirItem.node!;
    let names: Buffer[];
    try {
      names = readdirSync(dir.fs, { encoding: 'buffer' });
    } catch (err) {
      const code = errCode(err);
      warn({ vol, path: bytesToPath(dir.arc), code: code === 'ENOENT' ? 'vanished' : 'unreadable', message: `cannot list directory (${code})` });
      continue;
    }
    names.sort(Buffer.compare);
    // One buffer holds "<dir>/" and each name in turn: no allocation per lstat.
    const prefix = dir.fs.length + 1;
    const longest = names.reduce((n, b) => Math.max(n, b.length), 0);
    if (pathBuf.length < prefix + longest) pathBuf = Buffer.alloc((prefix + longest) * 2);
    dir.fs.copy(pathBuf, 0);
    pathBuf[dir.fs.length] = 0x2f;
    const subdirs: ScanItem[] = [];
    for (const name of names) {
      name.copy(pathBuf, prefix);
      const fsPath = pathBuf.subarray(0, prefix + name.length);
      let rel = '';
      if (exclude) {
        rel = dir.rel ? `${dir.rel}/${bytesToPath(name)}` : bytesToPath(name);
        if (exclude(rel)) continue;
      }
      let cst: BigIntStats | undefined;
      try {
        cst = lstatSync(fsPath, { bigint: true, throwIfNoEntry: false });
      } catch (err) {
        warn({ vol, path: arcPath(dir, name), code: 'unreadable', message: `cannot stat (${errCode(err)})` });
        continue;
      }
      if (!cst) {
        warn({ vol, path: arcPath(dir, name), code: 'vanished', message: 'file vanished before it was read' });
        continue;
      }
      if (cst.isDirectory()) {
        const d = item(dir, name, Kind.Dir, vol, cst);
        d.node = { fs: Buffer.from(fsPath), arc: Buffer.concat([dir.arc, SLASH, name]), rel };
        subdirs.push(d);
      } else if (cst.isFile()) {
        if (cst.nlink > 1n) {
          const key = `${cst.dev}:${cst.ino}`;
          const first = seen.get(key);
          if (first) {
            const h = item(dir, name, Kind.Hardlink, vol, cst);
            h.size = Number(cst.size);
            h.linkTo = first;
            out.items.push(h);
            continue;
          }
          const f = item(dir, name, Kind.File, vol, cst);
          seen.set(key, f);
          out.items.push(f);
        } else {
          out.items.push(item(dir, name, Kind.File, vol, cst));
        }
        out.filesTotal++;
        out.bytesTotal += Number(cst.size);
      } else if (cst.isSymbolicLink()) {
        out.items.push(item(dir, name, Kind.Symlink, vol, cst));
      } else {
        const what = cst.isSocket() ? 'socket' : cst.isFIFO() ? 'FIFO' : cst.isBlockDevice() ? 'block device' : cst.isCharacterDevice() ? 'character device' : 'special file';
        warn({ vol, path: arcPath(dir, name), code: 'skipped-type', message: `${what} skipped` });
      }
    }
    // Subdirectories come after the files of their parent, in name order.
    for (let i = subdirs.length - 1; i >= 0; i--) stack.push(subdirs[i]!);
  }
}

function arcPath(dir: DirNode, name: Buffer): string {
  return bytesToPath(Buffer.concat([dir.arc, SLASH, name]));
}
