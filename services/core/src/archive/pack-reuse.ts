/**
 * Incremental packs (issue 11), on the pack reader's thread: which scanned entries are unchanged
 * since the parent archive, and which of the parent's frames can stand in for them.
 *
 * The parent's entries are read once, in archive order, beside the walk (both follow the same
 * order: depth-first, a directory's other entries before its subdirectories, names by bytes), so
 * memory stays a batch of entries whatever the file count. An entry is unchanged when its type,
 * size, mode, owner, mtime, ctime, inode and device all match the parent's (and the parent read
 * it whole). A run of consecutive unchanged entries that covers whole parent frames exactly (a
 * format 2 pack cuts frames at entry boundaries) is not read: those frames are referenced. Entries
 * of a run that does not close on a frame boundary are read and stored as in a full pack.
 * A hard link is unchanged only when it still points at the same, stored, target. A share of
 * unchanged files is read anyway and compared with the parent's sha256 (kopia's force-hash idea).
 */
import { closeSync, constants as fsc, openSync, readSync } from 'node:fs';
import { createHash } from 'node:crypto';
import type { ArchiveEntry, EntryType } from './archive-types.ts';
import { entryEnd } from './archive-index.ts';
import { readSpill, type SharedSpill } from './entry-spill.ts';
import type { EntryEmitter } from './pack-entry-emitter.ts';
import type { ReaderReport } from './pack-reader-report.ts';
import { bytesToPath, pathToBytes } from './path-bytes.ts';
import type { ReusedFrame, TarBlockWriter } from './tar-block-writer.ts';
import { mtimeString } from './tar-header.ts';
import { Kind, LINK_TARGET, type ScanItem } from './tree-scan.ts';

/** What the reader thread gets of the parent archive (posted from pack.ts). */
export interface PackParentData {
  /** The parent's id: the object of its own blocks. */
  id: string;
  /** The parent's content bytes per chunk frame (undefined: no chunk is reused). */
  chunkSize: number | undefined;
  blocks: {
    object?: string;
    compressedOffset: number;
    compressedLength: number;
    uncompressedOffset: number;
    uncompressedLength: number;
    sha256?: string;
    last?: true;
  }[];
  /** Objects frames may be reused from. */
  objects: string[];
  entries: SharedSpill;
  rehashShare: number;
  /** This pack's volumes in order. */
  volumes: string[];
}

const TYPE_OF: Record<Kind, EntryType> = { [Kind.File]: 'file', [Kind.Dir]: 'dir', [Kind.Symlink]: 'symlink', [Kind.Hardlink]: 'hardlink' };
/** A run not closed after this many entries is stored afresh (a parent whose frames straddle entries). */
const MAX_RUN = 20_000;

/** The parent's block table, as frames this pack may point at. */
export class ParentFrames {
  private readonly startAt = new Map<number, number>();
  private readonly endAt = new Map<number, number>();
  private readonly frames: (ReusedFrame | undefined)[];

  constructor(private readonly d: PackParentData) {
    const allowed = new Set(d.objects);
    this.frames = d.blocks.map((b, i) => {
      this.startAt.set(b.uncompressedOffset, i);
      this.endAt.set(b.uncompressedOffset + b.uncompressedLength, i);
      const object = b.object ?? d.id;
      if (!allowed.has(object)) return undefined;
      const f: ReusedFrame = { object, compressedOffset: b.compressedOffset, compressedLength: b.compressedLength, uncompressedLength: b.uncompressedLength };
      if (b.sha256) f.sha256 = b.sha256;
      if (b.last) f.last = true;
      return f;
    });
  }

  /** Whether a parent frame starts at tar offset `off`. */
  startsAt(off: number): boolean {
    return this.startAt.has(off);
  }

  /** Whether a parent frame ends at tar offset `off`. */
  endsAt(off: number): boolean {
    return this.endAt.has(off);
  }

  /** The frames exactly covering parent tar bytes [start, end), if all may be reused. */
  span(start: number, end: number): ReusedFrame[] | undefined {
    const first = this.startAt.get(start);
    const last = this.endAt.get(end);
    if (first === undefined || last === undefined || last < first) return undefined;
    const out: ReusedFrame[] = [];
    for (let i = first; i <= last; i++) {
      const f = this.frames[i];
      if (!f) return undefined;
      out.push(f);
    }
    return out;
  }

  /** ChunkFrames for the emitter: the parent frame of chunk k of `e`, when it is `length` bytes. */
  readonly chunkFrame = (e: ArchiveEntry, k: number, length: number): ReusedFrame | undefined => {
    const size = this.d.chunkSize;
    if (!size) return undefined;
    const start = e.dataOffset + k * size;
    const i = this.startAt.get(start);
    const f = i === undefined ? undefined : this.frames[i];
    return f && f.uncompressedLength === length ? f : undefined;
  };
}

/** Where a path sorts in archive order: volume, then components (non-directories first, then by bytes). */
interface OrderKey {
  vol: number;
  parts: Buffer[];
  isDir: boolean;
}

function orderKey(path: Buffer, isDir: boolean, volumes: Map<string, number>): OrderKey {
  const parts: Buffer[] = [];
  let start = 0;
  for (let i = 0; i <= path.length; i++) {
    if (i === path.length || path[i] === 0x2f) {
      parts.push(path.subarray(start, i));
      start = i + 1;
    }
  }
  const vol = volumes.get(parts.shift()!.toString('latin1')) ?? -1;
  return { vol, parts, isDir };
}

export function compareOrder(a: OrderKey, b: OrderKey): number {
  if (a.vol !== b.vol) return a.vol - b.vol;
  const n = Math.min(a.parts.length, b.parts.length);
  for (let i = 0; i < n; i++) {
    const ad = i < a.parts.length - 1 || a.isDir;
    const bd = i < b.parts.length - 1 || b.isDir;
    if (ad !== bd) return ad ? 1 : -1;
    const c = Buffer.compare(a.parts[i]!, b.parts[i]!);
    if (c) return c;
  }
  // A directory comes before what it holds.
  return a.parts.length - b.parts.length;
}

/** The parent's entries, read forward once beside the walk. */
export class ParentCursor {
  private readonly batches: Generator<ArchiveEntry[]>;
  private batch: ArchiveEntry[] = [];
  private at = 0;
  /** Sequence number of the current entry in the parent's archive order. */
  private seq = -1;
  private current: ArchiveEntry | undefined;
  private currentKey: OrderKey | undefined;
  private readonly volumes: Map<string, number>;

  /** `onSkip`: called with each parent entry passed over (not in the walk: deleted, or of another type). */
  constructor(
    spill: SharedSpill,
    volumes: readonly string[],
    private readonly onSkip?: (e: ArchiveEntry) => void,
  ) {
    this.batches = readSpill(spill);
    this.volumes = new Map(volumes.map((v, i) => [v, i]));
    this.advance();
  }

  private advance(): void {
    for (;;) {
      while (this.at >= this.batch.length) {
        const next = this.batches.next();
        if (next.done) {
          this.current = undefined;
          return;
        }
        this.batch = next.value;
        this.at = 0;
      }
      this.current = this.batch[this.at++];
      this.seq++;
      this.currentKey = undefined;
      return;
    }
  }

  private key(): OrderKey {
    this.currentKey ??= orderKey(pathToBytes(this.current!.path), this.current!.type === 'dir', this.volumes);
    return this.currentKey;
  }

  /**
   * The parent's entry for `path` (same path, a directory on both sides or on neither), with its
   * sequence number; skips the parent's entries that sort before it. Calls must come in archive order.
   */
  find(path: string, arc: Buffer, isDir: boolean): { entry: ArchiveEntry; seq: number } | undefined {
    let key: OrderKey | undefined;
    while (this.current) {
      const e = this.current;
      if (e.path === path && (e.type === 'dir') === isDir) {
        const hit = { entry: e, seq: this.seq };
        this.advance();
        return hit;
      }
      key ??= orderKey(arc, isDir, this.volumes);
      const c = compareOrder(this.key(), key);
      if (c > 0) return undefined;
      this.onSkip?.(e);
      this.advance();
    }
    return undefined;
  }

  /** Passes over the rest of the parent's entries (calling onSkip for each). */
  finish(): void {
    while (this.current) {
      this.onSkip?.(this.current);
      this.advance();
    }
  }
}

function sameMeta(item: ScanItem, e: ArchiveEntry): boolean {
  if (e.partial || e.ino === undefined) return false;
  const type = TYPE_OF[item.kind];
  return (
    e.type === type &&
    e.size === (type === 'file' ? item.size : 0) &&
    e.mode === item.mode &&
    e.uid === item.uid &&
    e.gid === item.gid &&
    e.ctimeMs === item.ctimeMs &&
    e.ino === item.ino &&
    e.dev === item.dev &&
    e.mtime === mtimeString(item.mtimeSec, item.mtimeNsec)
  );
}

interface Run {
  /** Hard-link targets (item indexes) among the run's entries. */
  targets: Set<number>;
  /** Parent tar offset where the run starts, and just past its last entry. */
  start: number;
  end: number;
  lastSeq: number;
  items: ScanItem[];
  entries: ArchiveEntry[];
}

const READ_BUF = 1024 * 1024;

/** The pack reader's emitter for an incremental pack: reuses the parent's frames where it can. */
export class IncrementalEmitter {
  private readonly cursor: ParentCursor;
  private readonly frames: ParentFrames;
  private run: Run | undefined;
  private readBuf: Buffer | undefined;
  /** Archive paths of the hard-link targets walked so far, by item index. */
  private readonly targets = new Map<number, string>();

  constructor(
    private readonly inner: EntryEmitter,
    private readonly out: TarBlockWriter,
    private readonly report: ReaderReport,
    private readonly parent: PackParentData,
    frames: ParentFrames,
  ) {
    this.frames = frames;
    this.cursor = new ParentCursor(parent.entries, parent.volumes);
  }

  emit(item: ScanItem): void {
    const arc = item.node ? item.node.arc : Buffer.concat([item.parent!.arc, SLASH, Buffer.from(item.name!, 'latin1')]);
    const path = bytesToPath(arc);
    if (item.linkTo === LINK_TARGET) this.targets.set(item.index, path);
    const hit = this.cursor.find(path, arc, item.kind === Kind.Dir);
    if (hit && this.unchanged(item, hit.entry) && this.contentSame(item, hit.entry) && this.extend(item, hit.entry, hit.seq)) return;
    this.flush();
    this.inner.emit(item, hit?.entry);
  }

  /**
   * Unchanged since the parent. A hard link also needs the same target, already in the stream or
   * in the open run (which then goes in whole or is stored afresh whole, the link after it).
   */
  private unchanged(item: ScanItem, e: ArchiveEntry): boolean {
    if (!sameMeta(item, e)) return false;
    if (item.kind !== Kind.Hardlink) return true;
    return this.targets.get(item.linkTo) === e.linkTarget && (this.inner.isStored(item.linkTo) || this.run?.targets.has(item.linkTo) === true);
  }

  /** At the end of the walk: a run still open is stored afresh. */
  finish(): void {
    this.flush();
  }

  /** Adds an unchanged entry to the open run (or opens one); false when it cannot be part of one. */
  private extend(item: ScanItem, e: ArchiveEntry, seq: number): boolean {
    if (this.run && seq !== this.run.lastSeq + 1) this.flush();
    if (!this.run) {
      if (!this.frames.startsAt(e.headerOffset)) return false;
      this.run = { start: e.headerOffset, end: e.headerOffset, lastSeq: seq, items: [], entries: [], targets: new Set() };
    }
    const run = this.run;
    if (item.linkTo === LINK_TARGET) run.targets.add(item.index);
    run.items.push(item);
    run.entries.push(e);
    run.lastSeq = seq;
    run.end = entryEnd(e);
    if (this.frames.endsAt(run.end)) {
      const span = this.frames.span(run.start, run.end);
      if (span) this.commit(run, span);
      else this.flush();
    } else if (run.items.length >= MAX_RUN) {
      this.flush();
    }
    return true;
  }

  /** The run's entries go in by reference: the parent's frames, at this pack's tar offset. */
  private commit(run: Run, span: ReusedFrame[]): void {
    this.run = undefined;
    this.out.flush();
    const delta = this.out.tarPos - run.start;
    for (let i = 0; i < run.items.length; i++) {
      const e = run.entries[i]!;
      this.inner.storedReused(run.items[i]!, { ...e, headerOffset: e.headerOffset + delta, dataOffset: e.dataOffset + delta });
    }
    this.out.reuse(span, run.end - run.start);
  }

  /** Stores the open run's entries afresh, as a full pack would. */
  private flush(): void {
    const run = this.run;
    if (!run) return;
    this.run = undefined;
    for (let i = 0; i < run.items.length; i++) this.inner.emit(run.items[i]!, run.entries[i]);
  }

  /**
   * For a sampled share of unchanged files: reads the file and compares it with the parent's
   * sha256. A mismatch (content changed with size, times and inode kept) is a warning, and the
   * file is stored afresh.
   */
  private contentSame(item: ScanItem, e: ArchiveEntry): boolean {
    if (e.type !== 'file' || e.size === 0 || !e.sha256 || Math.random() >= this.parent.rehashShare) return true;
    const fsPath = Buffer.concat([item.parent!.fs, SLASH, Buffer.from(item.name!, 'latin1')]);
    const sha = this.hashFile(fsPath);
    if (sha === undefined || sha === e.sha256) return sha !== undefined;
    this.report.warn(e.path, 'changed', 'content differs from the parent backup although size, times and inode are the same; stored again', item.vol);
    return false;
  }

  private hashFile(fsPath: Buffer): string | undefined {
    let fd: number;
    try {
      fd = openSync(fsPath, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK);
    } catch {
      return undefined;
    }
    try {
      this.readBuf ??= Buffer.allocUnsafe(READ_BUF);
      const hash = createHash('sha256');
      for (let pos = 0; ; ) {
        const n = readSync(fd, this.readBuf, 0, READ_BUF, pos);
        if (n === 0) break;
        hash.update(this.readBuf.subarray(0, n));
        pos += n;
      }
      return hash.digest('hex');
    } catch {
      return undefined;
    } finally {
      closeSync(fd);
    }
  }
}

const SLASH = Buffer.from('/');
