/**
 * The pre-scan: walks a volume with synchronous readdir + lstat (no symlink is ever followed)
 * and lists what will be archived, in archive order. It gives the progress totals, and the
 * lstat results double as the "before" half of GNU tar's changed-while-read check.
 */
import { lstatSync, readdirSync, statSync, type BigIntStats } from 'node:fs';
import { CairnError } from '../errors.ts';
import type { WarningCode } from './archive-types.ts';
import { compileExcludes } from './exclude-matcher.ts';
import { errnoName, Meta as Meta_, type NativeReads } from './native-reads.ts';
import { bytesToPath } from './path-bytes.ts';
import { msFromParts, splitNs } from './tar-header.ts';

interface DirNode {
  /** Filesystem path bytes. */
  fs: Buffer;
  /** Archive path bytes ('<volume>/<rel>'). */
  arc: Buffer;
  /** Path relative to the volume (for excludes; '' for the root). */
  rel: string;
  /** Scanner side: the chunk generation this node was last listed in, and its index there. */
  gen?: number;
  at?: number;
}

export const enum Kind {
  File,
  Dir,
  Symlink,
  Hardlink,
}

/** `linkTo` of a file that is the first name of an inode with more names (a hard-link target). */
export const LINK_TARGET = -2;

/** One scanned entry, materialised on demand from the ScanList (short-lived). */
export interface ScanItem {
  /** Global index of the item in the walk (the same on both sides of the thread boundary). */
  index: number;
  /** Directory holding the item; undefined for a volume root. */
  parent: DirNode | undefined;
  /** Name bytes as a latin1 string. */
  name: string | undefined;
  /** For directories: the node their children hang from. */
  node: DirNode | undefined;
  kind: Kind;
  vol: number;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  /** mtime as whole seconds (floor) and nanoseconds. */
  mtimeSec: number;
  mtimeNsec: number;
  /** ctime and inode as Node's plain Stats has them, for comparing with a later fstat. */
  ctimeMs: number;
  ino: number;
  /** Device number (with ctime and inode: the next incremental backup's change detection). */
  dev: number;
  /** Hard link: global index of the inode's first name; LINK_TARGET for that first name; else -1. */
  linkTo: number;
}

/** A run of scanned items and the directories they refer to, sent from the scanner thread. */
export interface ScanChunk {
  /** Global index of the chunk's first item. */
  base: number;
  cols: Record<(typeof COLUMNS)[number], ArrayBufferView>;
  names: (string | undefined)[];
  /** Path bytes as latin1 strings (compact to send; Buffers would drag their pool slabs along). */
  dirs: { fs: string; arc: string; rel: string }[];
}

const COLUMNS = ['kind', 'vol', 'mode', 'uid', 'gid', 'size', 'mtimeSec', 'mtimeNsec', 'ctimeMs', 'ino', 'dev', 'parent', 'node', 'linkTo'] as const;

/**
 * Scanned items, column-wise: ~100 bytes per entry instead of ~300 for an object per entry
 * (and far less garbage-collector work).
 *
 * Memory does not grow with the volume: the scanner hands its items over in chunks (takeChunk)
 * and keeps nothing handed over, and the reader holds one chunk at a time (fromChunk). So a
 * chunk is self-contained: `parent` / `node` index the chunk's own `dirs`, and a directory
 * whose items span chunks is sent again with each. Item indexes are global (`base` + i).
 */
export class ScanList {
  length = 0;
  /** Global index of item 0. */
  base = 0;
  /** Chunk generation (scanner side): which DirNodes are already in `dirs`. */
  private gen = 0;
  private cap = 0;
  kind = new Uint8Array(0);
  vol = new Uint16Array(0);
  mode = new Uint16Array(0);
  uid = new Uint32Array(0);
  gid = new Uint32Array(0);
  size = new Float64Array(0);
  mtimeSec = new Float64Array(0);
  mtimeNsec = new Uint32Array(0);
  ctimeMs = new Float64Array(0);
  ino = new Float64Array(0);
  dev = new Float64Array(0);
  /** Index into `dirs` of the parent (-1 for a volume root) and, for directories, of their own node. */
  parent = new Int32Array(0);
  node = new Int32Array(0);
  /** See ScanItem.linkTo. */
  linkTo = new Int32Array(0);
  names: (string | undefined)[] = [];
  dirs: DirNode[] = [];

  private grow(): void {
    const cap = Math.max(1024, this.cap * 2);
    for (const c of COLUMNS) {
      const a = this[c];
      const b = new (a.constructor as new (n: number) => typeof a)(cap);
      b.set(a as never);
      (this as unknown as Record<string, unknown>)[c] = b;
    }
    this.cap = cap;
  }

  /** Index of `d` in this chunk's `dirs`, adding it when the chunk does not have it yet. */
  private dirAt(d: DirNode | undefined): number {
    if (!d) return -1;
    if (d.gen !== this.gen) {
      d.gen = this.gen;
      d.at = this.dirs.push(d) - 1;
    }
    return d.at!;
  }

  /** Global item count so far (items handed over included). */
  get total(): number {
    return this.base + this.length;
  }

  /** Takes the items gathered since the last call, with the directories they refer to (scanner side). */
  takeChunk(): ScanChunk {
    const n = this.length;
    const cols = {} as ScanChunk['cols'];
    for (const c of COLUMNS) cols[c] = (this[c] as Uint8Array).slice(0, n);
    const chunk: ScanChunk = {
      base: this.base,
      cols,
      names: this.names.slice(0, n),
      dirs: this.dirs.map((d) => ({ fs: d.fs.toString('latin1'), arc: d.arc.toString('latin1'), rel: d.rel })),
    };
    this.base += n;
    this.length = 0;
    this.names = [];
    this.dirs = [];
    this.gen++;
    return chunk;
  }

  /** The reader's view of one chunk (its columns are used as they arrived). */
  static fromChunk(c: ScanChunk): ScanList {
    const l = new ScanList();
    for (const k of COLUMNS) (l as unknown as Record<string, unknown>)[k] = c.cols[k];
    l.names = c.names;
    l.dirs = c.dirs.map((d) => ({ fs: Buffer.from(d.fs, 'latin1'), arc: Buffer.from(d.arc, 'latin1'), rel: d.rel }));
    l.length = l.cap = c.names.length;
    l.base = c.base;
    return l;
  }

  /** Transferables of a chunk (its columns are fresh copies). */
  static transferList(c: ScanChunk): ArrayBuffer[] {
    return COLUMNS.map((k) => c.cols[k].buffer as ArrayBuffer);
  }

  /** Adds an item; returns its global index. */
  push(parent: DirNode | undefined, name: Buffer | undefined, kind: Kind, vol: number, st: Meta, node?: DirNode, linkTo = -1): number {
    const parentAt = this.dirAt(parent);
    const nodeAt = this.dirAt(node);
    if (this.length === this.cap) this.grow();
    const i = this.length++;
    this.kind[i] = kind;
    this.vol[i] = vol;
    this.mode[i] = st.mode & 0o7777;
    this.uid[i] = st.uid;
    this.gid[i] = st.gid;
    this.size[i] = kind === Kind.File || kind === Kind.Hardlink ? st.size : 0;
    this.mtimeSec[i] = st.mtimeSec;
    this.mtimeNsec[i] = st.mtimeNsec;
    this.ctimeMs[i] = st.ctimeMs;
    this.ino[i] = st.ino;
    this.dev[i] = st.dev;
    this.parent[i] = parentAt;
    this.node[i] = nodeAt;
    this.linkTo[i] = linkTo;
    this.names[i] = name?.toString('latin1');
    return this.base + i;
  }

  item(i: number): ScanItem {
    const p = this.parent[i]!;
    const n = this.node[i]!;
    return {
      index: this.base + i,
      parent: p >= 0 ? this.dirs[p] : undefined,
      name: this.names[i],
      node: n >= 0 ? this.dirs[n] : undefined,
      kind: this.kind[i] as Kind,
      vol: this.vol[i]!,
      mode: this.mode[i]!,
      uid: this.uid[i]!,
      gid: this.gid[i]!,
      size: this.size[i]!,
      mtimeSec: this.mtimeSec[i]!,
      mtimeNsec: this.mtimeNsec[i]!,
      ctimeMs: this.ctimeMs[i]!,
      ino: this.ino[i]!,
      dev: this.dev[i]!,
      linkTo: this.linkTo[i]!,
    };
  }
}

/** What the scan keeps of an lstat (from Node's BigIntStats or from the native helper). */
interface Meta {
  /** st_mode with the file type bits. */
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtimeSec: number;
  mtimeNsec: number;
  /** As Node's plain Stats has it, for comparing with a later fstat. */
  ctimeMs: number;
  ino: number;
  dev: number;
  nlink: number;
  /** Exact "dev:ino", the key that finds hard links. */
  inode: string;
}

function msOfNs(ns: bigint): number {
  const { sec, nsec } = splitNs(ns);
  return msFromParts(sec, nsec);
}

function metaOf(st: BigIntStats): Meta {
  const { sec, nsec } = splitNs(st.mtimeNs);
  return {
    mode: Number(st.mode),
    uid: Number(st.uid),
    gid: Number(st.gid),
    size: Number(st.size),
    mtimeSec: sec,
    mtimeNsec: nsec,
    ctimeMs: msOfNs(st.ctimeNs),
    ino: Number(st.ino),
    dev: Number(st.dev),
    nlink: Number(st.nlink),
    inode: `${st.dev}:${st.ino}`,
  };
}

/** A directory's entries in name-byte order, each with its lstat (or the errno code). */
interface Listing {
  names: Buffer[];
  stat(i: number, fsPath: Buffer): Meta | string;
}

/** Plain Node: readdir, then one lstat per entry. */
function listWithNode(dirFs: Buffer): Listing | string {
  let names: Buffer[];
  try {
    names = readdirSync(dirFs, { encoding: 'buffer' });
  } catch (err) {
    return errCode(err);
  }
  names.sort(Buffer.compare);
  return {
    names,
    stat(_i, fsPath) {
      try {
        const st = lstatSync(fsPath, { bigint: true, throwIfNoEntry: false });
        return st ? metaOf(st) : 'ENOENT';
      } catch (err) {
        return errCode(err);
      }
    },
  };
}

/** The native helper: the same in one call per directory. */
function listWithNative(native: NativeReads, dirFsZ: Buffer): Listing | string {
  const r = native.scanDir(dirFsZ);
  if (typeof r === 'number') return errnoName(r);
  const [buf, m] = r;
  const n = m.length / Meta_.Slots;
  const names: Buffer[] = new Array<Buffer>(n);
  for (let i = 0; i < n; i++) {
    const o = i * Meta_.Slots;
    names[i] = buf.subarray(m[o + Meta_.NameOff]!, m[o + Meta_.NameOff]! + m[o + Meta_.NameLen]!);
  }
  return {
    names,
    stat(i) {
      const o = i * Meta_.Slots;
      if (m[o + Meta_.Errno]) return errnoName(m[o + Meta_.Errno]!);
      return {
        mode: m[o + Meta_.Mode]!,
        uid: m[o + Meta_.Uid]!,
        gid: m[o + Meta_.Gid]!,
        size: m[o + Meta_.Size]!,
        mtimeSec: m[o + Meta_.MtimeSec]!,
        mtimeNsec: m[o + Meta_.MtimeNsec]!,
        ctimeMs: msFromParts(m[o + Meta_.CtimeSec]!, m[o + Meta_.CtimeNsec]!),
        ino: m[o + Meta_.Ino]!,
        dev: m[o + Meta_.Dev]!,
        nlink: m[o + Meta_.Nlink]!,
        inode: `${m[o + Meta_.Dev]}:${m[o + Meta_.InoHi]}:${m[o + Meta_.InoLo]}`,
      };
    },
  };
}

const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
// Keys are the S_IFSOCK, S_IFIFO, S_IFBLK and S_IFCHR file types.
const SPECIAL: Record<number, string> = { [0o140000]: 'socket', [0o010000]: 'FIFO', [0o060000]: 'block device', [0o020000]: 'character device' };

export interface ScanWarning {
  vol: number;
  path: string;
  code: WarningCode;
  message: string;
}

const SLASH = Buffer.from('/');
const NUL = Buffer.from([0]);

export function errCode(err: unknown): string {
  return (err as NodeJS.ErrnoException).code ?? 'EIO';
}

type VolumeSpec = { name: string; dir: string; excludes: string[] };

/** A directory still to visit: its parent's node, its name and stats, its own node. */
interface Pending {
  parent: DirNode | undefined;
  name: Buffer | undefined;
  st: Meta;
  dir: DirNode;
}

/**
 * The pre-scan walk, one directory per step(): items go into `list`, from which the caller
 * takes chunks as it likes. The walk is depth-first in name-byte order (a directory's files,
 * then its subdirectories), which is the archive order. Only the directories still to visit
 * (and the first names of hard-linked inodes) are kept, so the walk's own memory follows the
 * tree's depth and breadth, not its size.
 */
export class TreeWalker {
  readonly list = new ScanList();
  /** Regular files (first names) and their bytes, walked so far. */
  filesTotal = 0;
  bytesTotal = 0;
  private vol = -1;
  private stack: Pending[] = [];
  // Hard links are only detected within a volume: volumes may be restored on their own.
  private seen = new Map<string, number>();
  private exclude: ((rel: string) => boolean) | undefined;
  private pathBuf = Buffer.alloc(4096);

  constructor(
    private readonly volumes: readonly VolumeSpec[],
    private readonly warn: (w: ScanWarning) => void,
    private readonly native?: NativeReads,
    /** Counting only (countRest): nothing goes into the list. */
    private readonly counting = false,
  ) {}

  /** Visits the next directory; false when the walk is over. */
  step(): boolean {
    while (!this.stack.length) {
      if (++this.vol >= this.volumes.length) return false;
      this.startVolume();
    }
    this.visit(this.stack.pop()!);
    return true;
  }

  /**
   * Files and bytes in the rest of the walk, found by walking it without keeping anything;
   * this walk then goes on where it was. For progress totals when the items cannot all be held
   * ahead of the reader (very large volumes).
   */
  countRest(checkAbort: () => void): { files: number; bytes: number } {
    const c = new TreeWalker(this.volumes, () => undefined, this.native, true);
    c.vol = this.vol;
    c.stack = [...this.stack];
    c.seen = new Map(this.seen);
    c.exclude = this.exclude;
    while (c.step()) checkAbort();
    return { files: c.filesTotal, bytes: c.bytesTotal };
  }

  private startVolume(): void {
    const v = this.volumes[this.vol]!;
    this.exclude = compileExcludes(v.excludes);
    this.seen = new Map();
    const rootFs = Buffer.from(v.dir);
    let st: BigIntStats;
    try {
      // The volume path itself may be a symlink (the caller resolved and checked it).
      st = statSync(rootFs, { bigint: true });
    } catch (err) {
      throw new CairnError('volume-missing', `volume ${v.name}: ${v.dir} is not readable (${errCode(err)})`);
    }
    if (!st.isDirectory()) throw new CairnError('volume-missing', `volume ${v.name}: ${v.dir} is not a directory`);
    this.stack.push({ parent: undefined, name: undefined, st: metaOf(st), dir: { fs: rootFs, arc: Buffer.from(v.name), rel: '' } });
  }

  private push(parent: DirNode | undefined, name: Buffer | undefined, kind: Kind, st: Meta, node?: DirNode, linkTo = -1): number {
    return this.counting ? -1 : this.list.push(parent, name, kind, this.vol, st, node, linkTo);
  }

  private visit(d: Pending): void {
    const vol = this.vol;
    const warn = this.warn;
    const exclude = this.exclude;
    this.push(d.parent, d.name, Kind.Dir, d.st, d.dir);
    const dir = d.dir;
    const listing = this.native ? listWithNative(this.native, Buffer.concat([dir.fs, NUL])) : listWithNode(dir.fs);
    if (typeof listing === 'string') {
      warn({ vol, path: bytesToPath(dir.arc), code: listing === 'ENOENT' ? 'vanished' : 'unreadable', message: `cannot list directory (${listing})` });
      return;
    }
    const names = listing.names;
    // One buffer holds "<dir>/" and each name in turn: no allocation per lstat.
    const prefix = dir.fs.length + 1;
    const longest = names.reduce((n, b) => Math.max(n, b.length), 0);
    if (this.pathBuf.length < prefix + longest) this.pathBuf = Buffer.alloc((prefix + longest) * 2);
    const pathBuf = this.pathBuf;
    dir.fs.copy(pathBuf, 0);
    pathBuf[dir.fs.length] = 0x2f;
    const subdirs: Pending[] = [];
    for (let i = 0; i < names.length; i++) {
      const name = names[i]!;
      name.copy(pathBuf, prefix);
      const fsPath = pathBuf.subarray(0, prefix + name.length);
      let rel = '';
      if (exclude) {
        rel = dir.rel ? `${dir.rel}/${bytesToPath(name)}` : bytesToPath(name);
        if (exclude(rel)) continue;
      }
      const cst = listing.stat(i, fsPath);
      if (typeof cst === 'string') {
        if (cst === 'ENOENT') warn({ vol, path: arcPath(dir, name), code: 'vanished', message: 'file vanished before it was read' });
        else warn({ vol, path: arcPath(dir, name), code: 'unreadable', message: `cannot stat (${cst})` });
        continue;
      }
      const type = cst.mode & S_IFMT;
      if (type === S_IFDIR) {
        subdirs.push({ parent: dir, name, st: cst, dir: { fs: Buffer.from(fsPath), arc: Buffer.concat([dir.arc, SLASH, name]), rel } });
      } else if (type === S_IFREG) {
        if (cst.nlink > 1) {
          const first = this.seen.get(cst.inode);
          if (first !== undefined) {
            this.push(dir, name, Kind.Hardlink, cst, undefined, first);
            continue;
          }
          this.seen.set(cst.inode, this.push(dir, name, Kind.File, cst, undefined, LINK_TARGET));
        } else {
          this.push(dir, name, Kind.File, cst);
        }
        this.filesTotal++;
        this.bytesTotal += cst.size;
      } else if (type === S_IFLNK) {
        this.push(dir, name, Kind.Symlink, cst);
      } else {
        warn({ vol, path: arcPath(dir, name), code: 'skipped-type', message: `${SPECIAL[type] ?? 'special file'} skipped` });
      }
    }
    // Subdirectories come after the files of their parent, in name order.
    for (let i = subdirs.length - 1; i >= 0; i--) this.stack.push(subdirs[i]!);
  }
}

function arcPath(dir: DirNode, name: Buffer): string {
  return bytesToPath(Buffer.concat([dir.arc, SLASH, name]));
}
