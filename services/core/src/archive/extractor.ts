/**
 * Writes tar entries into volume directories, synchronously (it runs in a worker thread: a sync
 * fs call costs a few µs, an async one ~50 µs here). Containment: every path component below a
 * volume root is checked with lstat once and must be a real directory; files are created with
 * O_EXCL|O_NOFOLLOW after removing whatever was there, so no write ever follows a symlink.
 */
import { createHash, type Hash } from 'node:crypto';
import {
  closeSync,
  constants as fsc,
  fchmodSync,
  fchownSync,
  ftruncateSync,
  lchownSync,
  linkSync,
  lstatSync,
  mkdirSync,
  chmodSync,
  openSync,
  rmdirSync,
  symlinkSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { CairnError } from '../errors.ts';
import type { ArchiveEntry, ArchiveWarning } from './archive-types.ts';
import { errnoName, WriteOut, type NativeReads } from './native-reads.ts';
import { bytesToPath, pathToBytes } from './path-bytes.ts';
import { splitArchivePath, unsafe } from './path-safety.ts';
import type { ParsedEntry, TarHandler } from './tar-parser.ts';
import { TarParser } from './tar-parser.ts';
import { padTo512, plainFileHeaders, splitNs } from './tar-header.ts';
import type { TimeSetter } from './time-setter.ts';

/** What the index says about an entry to extract, keyed by its header offset. */
interface PlannedEntry extends Pick<ArchiveEntry, 'path' | 'type' | 'size' | 'mode' | 'uid' | 'gid' | 'mtime' | 'linkTarget' | 'sha256' | 'dataOffset'> {
  /**
   * Where to write it, when not at its own path: a file brought along only as the content of
   * selected hard links is written under the first link's path and linked to the others.
   */
  outputs?: string[];
  /** A hard link written through its source's `outputs`. */
  covered?: boolean;
  /**
   * The content at `dataOffset` was checked against `sha256` already (by the codec worker that
   * decoded its block): it is not hashed again, as long as the tar puts the content there too.
   */
  verified?: true;
  /**
   * The content at `dataOffset` is hashed by the hash-ahead worker as its blocks go by (a file
   * spanning blocks, hash-ahead-job.ts): the sha256 found arrives with the block holding its last
   * byte (addDigests).
   */
  hashedAhead?: true;
  /**
   * Written already by the codec worker that decoded its block (direct-writes.ts): created,
   * written, owned and timed at its path, as long as the tar puts the content where the index does.
   */
  written?: true;
  /** A written file's failed chown and mtime (errnos; 0: none), reported as warnings here. */
  writeErrnos?: [number, number];
}

/** A planned entry with the offset of its first header (the extractor's key). */
export type PlanItem = PlannedEntry & { headerOffset: number };

interface ExtractorOptions {
  /** Volume name -> absolute directory. */
  roots: Record<string, string>;
  /** Every entry of the extracted volumes is planned: anything else in the tar is corruption. */
  strict: boolean;
  /** Volumes of the archive; an entry in none of them is corruption. */
  knownVolumes: ReadonlySet<string>;
  restoreOwnership: boolean;
  /** Sets mtimes (time-setter.ts): exact with the native helper, to the microsecond without. */
  times: TimeSetter;
  /** The native helper, when loaded: small files are then written whole in one call (writeFile). */
  native?: NativeReads | undefined;
}

interface ExtractStats {
  filesWritten: number;
  bytesWritten: number;
}

const SLASH = Buffer.from('/');
// Copying a fresh context is cheaper than createHash() per file.
const SHA256 = createHash('sha256');
const ZERO_CHUNK = 64 * 1024;
const ZEROS = Buffer.alloc(ZERO_CHUNK);
/**
 * Files of at least this size are checked for holes and written back as they are written
 * (startWriteback); smaller ones are left in the page cache (a call per file would cost more than
 * it saves), so a restore of many of them flushes ahead instead (the worker's FlushAhead).
 */
export const SPARSE_MIN = 1024 * 1024;
const WRITEBACK_STEP = 8 * 1024 * 1024;
const CREATE = fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW;
const EMPTY = Buffer.alloc(0);

function code(err: unknown): string {
  return (err as NodeJS.ErrnoException).code ?? '';
}

interface OpenFile {
  plan: PlannedEntry;
  headerOffset: number;
  outPaths: Buffer[];
  /** -1 until the first piece of content is written (a file written whole is never opened here). */
  fd: number;
  /** Undefined when the content was verified before it got here or is hashed ahead. */
  hash: Hash | undefined;
  pos: number;
  skipped: boolean;
  /** Content known to be checked already (PlannedEntry.verified, at the offset the tar has it). */
  verified: boolean;
  /** Content hashed by the hash-ahead worker (PlannedEntry.hashedAhead, at the offset the tar has it). */
  hashedAhead: boolean;
  /** Written whole (writeWhole): created, written, owned, timed and closed. */
  written: boolean;
  /** Where the writeback started for this file ends (startWriteback). */
  writtenBack: number;
}

export class Extractor implements TarHandler {
  readonly stats: ExtractStats = { filesWritten: 0, bytesWritten: 0 };
  readonly warnings: ArchiveWarning[] = [];
  private readonly parser = new TarParser(this);
  private readonly rootBytes = new Map<string, Buffer>();
  private readonly dirs: { path: Buffer; plan: PlannedEntry }[] = [];
  /**
   * Planned entries not reached yet. The plan arrives with the blocks holding each entry's
   * header, so this holds a block's worth of entries, not the whole index.
   */
  private readonly pending = new Map<number, PlannedEntry>();
  /** sha256 of files hashed ahead (PlannedEntry.hashedAhead), by header offset, until their end. */
  private readonly digests = new Map<number, string>();
  /** Verified directories: archive path -> filesystem path. */
  private readonly dirCache = new Map<string, Buffer>();
  private readonly times: TimeSetter;
  private readonly umask: number;
  private readonly asRoot = process.getuid?.() === 0;
  private file: OpenFile | undefined;
  private skipping = false;
  /** The native one-call writer of small files, when the helper has it. */
  private readonly writeFile: NativeReads['writeFile'];
  /** The native writeback starter (sync_file_range), when the helper has it. */
  private readonly startWriteback: NativeReads['startWriteback'];
  private readonly writeOut = new Int32Array(WriteOut.Slots);
  private readonly digest = Buffer.alloc(32);
  /** A path with its NUL terminator, in one reused buffer. */
  private cPath = Buffer.alloc(4096);

  constructor(private readonly o: ExtractorOptions) {
    for (const [vol, dir] of Object.entries(o.roots)) {
      const root = Buffer.from(dir.replace(/\/+$/, '') || '/');
      mkdirSync(root, { recursive: true });
      this.rootBytes.set(vol, root);
      this.dirCache.set(vol, root);
    }
    this.times = o.times;
    this.writeFile = o.native?.writeSlots === WriteOut.Slots ? o.native.writeFile : undefined;
    this.startWriteback = o.native?.startWriteback;
    if (!this.times.exact) {
      this.warnings.push({ path: '', code: 'time-precision', message: 'native helper not built or switched off: mtimes restored to the microsecond' });
    }
    this.umask = readUmask();
  }

  /** Entries whose headers start in the next block(s). */
  addPlan(items: readonly PlanItem[]): void {
    for (const it of items) this.pending.set(it.headerOffset, it);
  }

  /** The sha256 found of files hashed ahead whose last byte is in the next block: [header offset, hex]. */
  addDigests(digests: readonly [number, string][]): void {
    for (const [off, sha] of digests) this.digests.set(off, sha);
  }

  /** Starts parsing at a header offset; `limit` is where the run's entries end. */
  startRun(start: number, limit: number): void {
    this.parser.resync(start, limit);
  }

  push(chunk: Buffer, offset: number): void {
    this.parser.push(chunk, offset);
  }

  /** Whether the parser still holds views of chunks pushed earlier (TarParser.holding): they must not be reused yet. */
  get holding(): boolean {
    return this.parser.holding;
  }

  finish(): ExtractStats & { warnings: ArchiveWarning[] } {
    this.parser.finish();
    for (const [off, p] of this.pending) throw new CairnError('archive-corrupt', `entry ${p.path} is not in the archive at offset ${off}`);
    // Directory times after all their contents exist, then modes (a read-only directory must
    // stay writable while it is filled), children before parents.
    for (const d of this.dirs) this.times.set(d.path, BigInt(d.plan.mtime));
    for (const f of this.times.failures) this.warnings.push({ path: bytesToPath(f.path), code: 'attributes', message: `mtime not restored: ${f.reason}` });
    for (let i = this.dirs.length - 1; i >= 0; i--) {
      const d = this.dirs[i]!;
      this.own(d.path, d.plan, false);
      try {
        chmodSync(d.path, d.plan.mode);
      } catch (err) {
        this.warn(d.plan.path, `mode not restored (${code(err)})`);
      }
    }
    return { ...this.stats, warnings: this.warnings };
  }

  abort(): void {
    if (this.file && this.file.fd >= 0) {
      try {
        closeSync(this.file.fd);
      } catch {
        // already closed
      }
      this.file = undefined;
    }
  }

  // ---- TarHandler -------------------------------------------------------------------------

  /**
   * A file the codec worker wrote (its content checked there against the index's sha256): when its
   * headers in the tar plainly say what the index says (plainFileHeaders: the path, a regular file,
   * the size), it is counted and passed over without a full parse. Anything else (headers split
   * between blocks, other PAX records, a mismatch) is parsed and checked as usual.
   */
  skipEntry(headerOffset: number, ahead: Buffer): number | undefined {
    const plan = this.pending.get(headerOffset);
    if (!plan?.written || plan.outputs || plan.type !== 'file') return undefined;
    const length = plan.dataOffset - headerOffset;
    if (ahead.length < length) return undefined;
    if (!plainFileHeaders(ahead, 0, length, pathToBytes(plan.path), plan.size)) return undefined;
    this.pending.delete(headerOffset);
    this.countWritten(plan);
    return plan.dataOffset + padTo512(plan.size);
  }

  entry(e: ParsedEntry): void {
    const plan = this.pending.get(e.headerOffset);
    const name = bytesToPath(e.path);
    if (!plan) {
      const { volume } = splitArchivePath(name);
      if ((this.o.strict && this.rootBytes.has(volume)) || !this.o.knownVolumes.has(volume)) {
        throw new CairnError('archive-corrupt', `entry ${name} at offset ${e.headerOffset} is not in the index`);
      }
      this.skipping = true;
      return;
    }
    if (plan.path !== name || (e.type !== plan.type && e.type !== 'other') || (e.type === 'file' && e.size !== plan.size)) {
      throw new CairnError(
        'archive-corrupt',
        `entry at offset ${e.headerOffset} is ${name} (${e.type}, ${e.size} bytes), the index says ${plan.path} (${plan.type}, ${plan.size} bytes)`,
      );
    }
    if (e.type === 'symlink' && bytesToPath(e.linkTarget) !== plan.linkTarget) {
      throw new CairnError('archive-corrupt', `symlink ${name} points at another target than the index says`);
    }
    this.pending.delete(e.headerOffset);
    this.skipping = false;
    if (e.type === 'other') {
      this.warnings.push({ path: name, code: 'unsupported-entry', message: `tar entry type '${e.typeflag}' not extracted` });
      this.skipping = true;
      return;
    }
    if (plan.covered) {
      this.skipping = true;
      return;
    }
    switch (plan.type) {
      case 'dir':
        this.makeDir(plan);
        break;
      case 'symlink':
        this.makeSymlink(plan, e.linkTarget);
        break;
      case 'hardlink':
        this.makeHardlink(plan, this.resolve(plan.path), plan.linkTarget!);
        break;
      default:
        this.openFile(plan, e);
    }
  }

  /** The whole content of a file in one piece: small files go out in one native call. */
  content(chunk: Buffer): void {
    const f = this.file;
    if (!f || this.skipping) return;
    if (this.writeFile && f.plan.size < SPARSE_MIN) this.writeWhole(f, chunk);
    else this.data(chunk);
  }

  data(chunk: Buffer): void {
    const f = this.file;
    if (!f || this.skipping) return;
    if (f.fd < 0) this.create(f);
    f.hash?.update(chunk);
    if (f.plan.size >= SPARSE_MIN) {
      // Runs of zeros are skipped (holes) so a sparse file stays sparse on restore; the data
      // between them goes out in one write, not one per ZERO_CHUNK.
      let i = 0;
      let run = 0;
      while (i < chunk.length) {
        const n = Math.min(ZERO_CHUNK - ((f.pos + i) % ZERO_CHUNK), chunk.length - i);
        // The file was created empty: unwritten ranges read as zeros (and stay holes).
        if (isZeros(chunk, i, n)) {
          if (i > run) writeAll(f.fd, chunk.subarray(run, i), f.pos + run);
          f.skipped = true;
          run = i + n;
        }
        i += n;
      }
      if (chunk.length > run) writeAll(f.fd, chunk.subarray(run), f.pos + run);
      f.pos += chunk.length;
      // A large file's pages start for the disk as they are written (not waited for): the flush
      // before the swap then finds little left, instead of writing gigabytes while nothing else runs.
      if (this.startWriteback && f.pos - f.writtenBack >= WRITEBACK_STEP) {
        this.startWriteback(f.fd, f.writtenBack, f.pos - f.writtenBack);
        f.writtenBack = f.pos;
      }
    } else {
      writeAll(f.fd, chunk, f.pos);
      f.pos += chunk.length;
    }
    this.stats.bytesWritten += chunk.length;
  }

  entryEnd(e: ParsedEntry): void {
    const f = this.file;
    if (!f || this.skipping) {
      this.skipping = false;
      return;
    }
    this.file = undefined;
    if (!f.written) {
      // An empty file has had no content call.
      if (f.fd < 0 && this.writeFile) this.writeWhole(f, EMPTY);
      else this.close(f);
    }
    for (const [i, extra] of f.outPaths.slice(1).entries()) this.link(f.outPaths[0]!, extra, f.plan.outputs![i + 1]!);
    this.stats.filesWritten += f.outPaths.length;
    void e;
  }

  // ---- writing ----------------------------------------------------------------------------

  /** Creates the file that data() writes piece by piece. */
  private create(f: OpenFile): void {
    const out = f.outPaths[0]!;
    this.replace(out, f.plan.outputs?.[0] ?? f.plan.path, () => {
      f.fd = openSync(out, CREATE, f.plan.mode & 0o777);
    });
    if (!f.verified && !f.hashedAhead) f.hash = SHA256.copy();
  }

  /**
   * A file whose whole content is at hand, in one native call: sha256 checked before anything is
   * created (unless the codec worker checked it), then create, write, owner, mode, mtime, close.
   */
  private writeWhole(f: OpenFile, content: Buffer): void {
    const { plan } = f;
    if (f.hashedAhead) this.digests.delete(f.headerOffset);
    const out = f.outPaths[0]!;
    const path = this.nulTerminated(out);
    const expected = plan.sha256 !== undefined && !f.verified ? Buffer.from(plan.sha256, 'hex') : EMPTY;
    const chown = chownTarget(plan, this.o.restoreOwnership, this.asRoot);
    const chmod = umaskDrops(plan.mode, this.umask) ? 1 : 0;
    const { sec, nsec } = splitNs(BigInt(plan.mtime));
    const w = this.writeOut;
    this.replace(out, plan.outputs?.[0] ?? plan.path, () => {
      this.writeFile!(path, content, plan.mode, chmod, chown, chown < 0 ? -1 : plan.gid, sec, nsec, expected, this.digest, w);
      if (w[WriteOut.OpenErrno]) throw errnoError(w[WriteOut.OpenErrno]!, 'open', out);
    });
    if (w[WriteOut.Mismatch]) {
      throw new CairnError('checksum-mismatch', `content of ${plan.path} does not match its sha256 (${this.digest.toString('hex')} != ${plan.sha256})`);
    }
    if (w[WriteOut.WriteErrno]) throw errnoError(w[WriteOut.WriteErrno]!, 'write', out);
    if (w[WriteOut.ChmodErrno]) throw errnoError(w[WriteOut.ChmodErrno]!, 'fchmod', out);
    if (w[WriteOut.ChownErrno]) this.warn(bytesToPath(out), `owner not restored (${errnoName(w[WriteOut.ChownErrno]!)})`);
    if (w[WriteOut.TimeErrno]) this.times.failures.push({ path: out, reason: errnoName(w[WriteOut.TimeErrno]!) });
    f.written = true;
    this.stats.bytesWritten += content.length;
  }

  /** Ends a file written piece by piece: its sha256 checked, then owner, mode, mtime. */
  private close(f: OpenFile): void {
    if (f.fd < 0) this.create(f);
    try {
      if (f.skipped) ftruncateSync(f.fd, f.plan.size);
      const sha = f.hashedAhead ? this.digestAhead(f) : f.hash?.digest('hex');
      if (sha !== undefined && f.plan.sha256 !== undefined && sha !== f.plan.sha256) {
        closeSync(f.fd);
        f.fd = -1;
        for (const p of f.outPaths) unlinkQuiet(p);
        throw new CairnError('checksum-mismatch', `content of ${f.plan.path} does not match its sha256 (${sha} != ${f.plan.sha256})`);
      }
      const chowned = this.ownFd(f.fd, f.plan, f.outPaths[0]!);
      // Creation applied the umask and dropped setuid/setgid/sticky; chown drops setuid too.
      if (umaskDrops(f.plan.mode, this.umask) || (chowned && f.plan.mode & 0o6000)) fchmodSync(f.fd, f.plan.mode);
    } finally {
      if (f.fd >= 0) closeSync(f.fd);
    }
    this.times.set(f.outPaths[0]!, BigInt(f.plan.mtime));
  }

  private digestAhead(f: OpenFile): string {
    const sha = this.digests.get(f.headerOffset);
    if (sha === undefined) throw new CairnError('internal', `the sha256 of ${f.plan.path} did not arrive with its last block`);
    this.digests.delete(f.headerOffset);
    return sha;
  }

  private nulTerminated(path: Buffer): Buffer {
    if (this.cPath.length <= path.length) this.cPath = Buffer.alloc(path.length * 2);
    this.cPath.set(path, 0);
    this.cPath[path.length] = 0;
    return this.cPath.subarray(0, path.length + 1);
  }

  /** Output path of an archive path, with every parent directory created and checked. */
  private resolve(path: string): Buffer {
    const { volume, parts } = splitArchivePath(path);
    if (!this.rootBytes.has(volume)) throw unsafe(path, `volume ${volume} is not being restored`);
    if (parts.length === 0) return this.rootBytes.get(volume)!;
    const slash = path.lastIndexOf('/');
    return Buffer.concat([this.dir(path.slice(0, slash)), SLASH, pathToBytes(path.slice(slash + 1))]);
  }

  /** A directory below a volume root, created if missing; never a symlink (checked once). */
  private dir(archivePath: string): Buffer {
    const known = this.dirCache.get(archivePath);
    if (known) return known;
    const slash = archivePath.lastIndexOf('/');
    const out = Buffer.concat([this.dir(archivePath.slice(0, slash)), SLASH, pathToBytes(archivePath.slice(slash + 1))]);
    let st = lstatSync(out, { throwIfNoEntry: false });
    // A codec worker may make it meanwhile (direct-writes.ts): then it is checked as found.
    if (!st && !makeDirectory(out, 0o755)) st = lstatSync(out);
    if (st?.isSymbolicLink()) throw unsafe(archivePath, 'a parent directory is a symlink');
    else if (st && !st.isDirectory()) throw unsafe(archivePath, 'a parent is not a directory');
    this.dirCache.set(archivePath, out);
    return out;
  }

  private makeDir(plan: PlannedEntry): void {
    const out = this.resolve(plan.path);
    let st = lstatSync(out, { throwIfNoEntry: false });
    if (st && !st.isDirectory()) {
      unlinkSync(out);
      st = undefined;
    }
    // Owner rwx while extracting; the archived mode is applied at the end. A codec worker may
    // have made it meanwhile (direct-writes.ts): then it is taken as found, if a directory.
    if (!st && !makeDirectory(out, 0o700)) {
      st = lstatSync(out);
      if (!st.isDirectory()) throw unsafe(plan.path, 'something other than a directory appeared at its path');
    }
    if (st && (st.mode & 0o700) !== 0o700) {
      chmodSync(out, (st.mode & 0o7777) | 0o700);
    }
    if (splitArchivePath(plan.path).parts.length) this.dirCache.set(plan.path, out);
    this.dirs.push({ path: out, plan });
  }

  private makeSymlink(plan: PlannedEntry, target: Buffer): void {
    const out = this.resolve(plan.path);
    this.replace(out, plan.path, () => symlinkSync(target, out));
    this.own(out, plan, true);
    this.times.set(out, BigInt(plan.mtime));
  }

  private makeHardlink(plan: PlannedEntry, out: Buffer, linkTarget: string): void {
    const src = this.resolve(linkTarget);
    const st = lstatSync(src, { throwIfNoEntry: false });
    if (!st?.isFile()) throw new CairnError('archive-corrupt', `hard link ${plan.path} points at ${linkTarget}, which was not extracted as a file`);
    this.link(src, out, plan.path);
    this.stats.filesWritten++;
  }

  private link(src: Buffer, out: Buffer, archivePath: string): void {
    this.replace(out, archivePath, () => linkSync(src, out));
  }

  /** Runs `make`; if something is in the way, removes it (never following it) and retries. */
  private replace(out: Buffer, archivePath: string, make: () => void): void {
    try {
      make();
    } catch (err) {
      if (code(err) !== 'EEXIST') throw err;
      const st = lstatSync(out);
      if (st.isDirectory()) {
        rmdirSync(out);
        this.dirCache.delete(archivePath);
      } else {
        unlinkSync(out);
      }
      make();
    }
  }

  /** Starts a file: created once its content arrives (whole, or the first piece). */
  private openFile(plan: PlannedEntry, e: ParsedEntry): void {
    if (plan.written && plan.dataOffset === e.dataOffset && !plan.outputs) {
      this.writtenAhead(plan);
      return;
    }
    const outPaths = (plan.outputs ?? [plan.path]).map((p) => this.resolve(p));
    // What was checked or hashed elsewhere is the index's range: it counts only if the tar has the content there too.
    const there = plan.dataOffset === e.dataOffset;
    const verified = plan.verified === true && there;
    const hashedAhead = plan.hashedAhead === true && there;
    this.file = {
      plan,
      headerOffset: e.headerOffset,
      outPaths,
      fd: -1,
      hash: undefined,
      pos: 0,
      skipped: false,
      verified,
      hashedAhead,
      written: false,
      writtenBack: 0,
    };
  }

  /** A file the codec worker wrote (PlannedEntry.written): counted, its problems reported, its content skipped. */
  private writtenAhead(plan: PlannedEntry): void {
    this.skipping = true;
    this.countWritten(plan);
  }

  private countWritten(plan: PlannedEntry): void {
    this.stats.filesWritten++;
    this.stats.bytesWritten += plan.size;
    if (!plan.writeErrnos) return;
    const [chown, time] = plan.writeErrnos;
    const out = this.resolve(plan.path);
    if (chown) this.warn(bytesToPath(out), `owner not restored (${errnoName(chown)})`);
    if (time) this.times.failures.push({ path: out, reason: errnoName(time) });
  }

  private ownFd(fd: number, plan: PlannedEntry, path: Buffer): boolean {
    if (!this.o.restoreOwnership) return false;
    if (this.asRoot && plan.uid === 0 && plan.gid === 0) return false;
    try {
      fchownSync(fd, plan.uid, plan.gid);
      return true;
    } catch (err) {
      this.warn(bytesToPath(path), `owner not restored (${code(err)})`);
      return false;
    }
  }

  private own(path: Buffer, plan: PlannedEntry, symlink: boolean): void {
    if (!this.o.restoreOwnership) return;
    if (this.asRoot && plan.uid === 0 && plan.gid === 0) return;
    try {
      lchownSync(path, plan.uid, plan.gid);
    } catch (err) {
      this.warn(plan.path, `owner not restored${symlink ? ' (symlink)' : ''} (${code(err)})`);
    }
  }

  private warn(path: string, message: string): void {
    this.warnings.push({ path, code: 'attributes', message });
  }
}

/** Whether buf[at, at + n) is all zeros (n <= ZERO_CHUNK). */
function isZeros(buf: Buffer, at: number, n: number): boolean {
  // A cheap look at the first byte: real data rarely starts a 64 KiB piece with a zero.
  return buf[at] === 0 && buf.subarray(at, at + n).equals(n === ZERO_CHUNK ? ZEROS : ZEROS.subarray(0, n));
}

/** An error like Node's fs errors, from an errno the native helper returned. */
function errnoError(errno: number, syscall: string, path: Buffer): NodeJS.ErrnoException {
  const name = errnoName(errno);
  return Object.assign(new Error(`${name}: ${syscall} '${bytesToPath(path)}'`), { code: name, errno: -errno, syscall, path: bytesToPath(path) });
}

/**
 * The uid to chown a restored file to, or -1 when its owner is left alone: ownership not restored,
 * or root's own files extracted by root (they are root's already). The codec workers' writes
 * (direct-writes.ts) follow the same rule.
 */
export function chownTarget(p: { uid: number; gid: number }, restoreOwnership: boolean, asRoot: boolean): number {
  if (!restoreOwnership) return -1;
  if (asRoot && p.uid === 0 && p.gid === 0) return -1;
  return p.uid;
}

/** Whether creating a file with `mode` under `umask` loses permission bits (then an fchmod restores them). */
export function umaskDrops(mode: number, umask: number): boolean {
  return (mode & ~umask & 0o777) !== mode;
}

/** mkdir; false when something is there already (the caller looks at what). */
export function makeDirectory(path: Buffer, mode: number): boolean {
  try {
    mkdirSync(path, mode);
    return true;
  } catch (err) {
    if (code(err) !== 'EEXIST') throw err;
    return false;
  }
}

function writeAll(fd: number, buf: Buffer, pos: number): void {
  let off = 0;
  while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off, pos + off);
}

export function unlinkQuiet(p: Buffer): void {
  try {
    unlinkSync(p);
  } catch {
    // best effort
  }
}

export function readUmask(): number {
  try {
    // Reading (not setting) the umask is allowed in worker threads.
    return process.umask();
  } catch {
    return 0o022;
  }
}
