/**
 * Small files written by the codec worker that decodes their block (unpack). Creating files is
 * kernel work that bounds a restore of many small files; done only by the extract worker it runs
 * on one core, done where each block is decoded it runs on all the codec workers at once.
 *
 * Only the plain case goes this way: a file whose whole content lies in one block, checked there
 * against its sha256 (content-checks.ts), written to its own path (no hard-link redirection),
 * smaller than the size the extractor writes sparse. The worker creates it with
 * O_EXCL|O_NOFOLLOW below directories it checked itself (lstat, never a symlink; each once per
 * unpack), as the extractor does; anything else — the path taken, a parent missing and not
 * creatable, a write failing — leaves that file to the extractor, which writes it (or reports
 * the error) as it would have. The plan refuses every entry below an archived symlink
 * (unpack-plan.ts), so no directory checked here becomes a symlink during the unpack.
 *
 * Order: in a tar the last entry at a path wins. A file is written ahead only when no other
 * entry the extractor has not finished yet has its path, and none that is not a directory has the
 * path of one of its parents; otherwise writing it ahead could put it in place before an earlier
 * entry at that path, which would then replace it.
 *
 * Encoding (one transferred buffer per block), per file: check index, mode, chmod flag, uid and
 * gid (-1: owner left alone), mtime nanoseconds (uint32/int32 LE), mtime seconds (float64 LE),
 * the length of the volume root's part of the path, the path's length, then the path itself with
 * its NUL. The worker answers with three int32 per file: written (1 or 0), then the errno of a
 * failed chown and of a failed mtime (the file stays written; the extractor reports them).
 */
import { lstatSync, statSync } from 'node:fs';
import { WriteOut, type NativeReads } from './native-reads.ts';
import { pathToBytes } from './path-bytes.ts';
import { chownTarget, makeDirectory, readUmask, umaskDrops, unlinkQuiet, type PlanItem } from './extractor.ts';
import { splitNsString } from './tar-header.ts';

/** Files this size and larger are written by the extractor, which keeps runs of zeros as holes. */
export const DIRECT_MAX_SIZE = 1024 * 1024;
const HEAD = 40;
const SLASH = 0x2f;
const EMPTY = Buffer.alloc(0);

export interface DirectWriteSettings {
  /** Volume name -> absolute directory (the plan's roots). */
  roots: Record<string, string>;
  restoreOwnership: boolean;
  /** Tells one unpack's directory checks from another's in the shared codec workers. */
  token: string;
}

/** Main-thread side: which of a block's checked files go to its codec worker, and their results. */
export class DirectWrites {
  private readonly rootBytes = new Map<string, Buffer>();
  /** Entries planned whose end the extractor has not passed yet: how many at each path, and how many of those are not directories. */
  private readonly pending = new Map<string, number>();
  private readonly pendingNonDirs = new Map<string, number>();
  private readonly queue: { path: string; dir: boolean; end: number }[] = [];
  private queueHead = 0;
  /** Tar offsets where the blocks handed out end, oldest first, until the extractor acknowledges them. */
  private readonly blockEnds: number[] = [];
  private readonly asRoot = process.getuid?.() === 0;
  private readonly umask = readUmask();

  constructor(readonly settings: DirectWriteSettings) {
    for (const [vol, dir] of Object.entries(settings.roots)) this.rootBytes.set(vol, Buffer.from(dir.replace(/\/+$/, '') || '/'));
  }

  /** A block's plan items, in block order, as they are handed out (before encode), and where the block ends. */
  planned(items: readonly PlanItem[], blockEnd: number): void {
    for (const p of items) {
      const dir = p.type === 'dir';
      this.queue.push({ path: p.path, dir, end: p.dataOffset + (p.type === 'file' ? p.size : 0) });
      bump(this.pending, p.path, 1);
      if (!dir) bump(this.pendingNonDirs, p.path, 1);
    }
    this.blockEnds.push(blockEnd);
  }

  /** The extractor is done with the oldest block handed out: the entries that ended in it are settled. */
  acked(): void {
    const end = this.blockEnds.shift();
    if (end === undefined) return;
    while (this.queueHead < this.queue.length && this.queue[this.queueHead]!.end <= end) {
      const q = this.queue[this.queueHead++]!;
      bump(this.pending, q.path, -1);
      if (!q.dir) bump(this.pendingNonDirs, q.path, -1);
    }
    if (this.queueHead > 1024 && this.queueHead * 2 > this.queue.length) {
      this.queue.splice(0, this.queueHead);
      this.queueHead = 0;
    }
  }

  /** `checked`: the block's files checked by its codec worker, in the order of its checks. */
  encode(checked: readonly PlanItem[]): { buf: ArrayBuffer; files: PlanItem[] } | undefined {
    const files: PlanItem[] = [];
    const records: Buffer[] = [];
    checked.forEach((p, check) => {
      if (p.outputs || p.size >= DIRECT_MAX_SIZE || !this.alone(p.path)) return;
      // The plan checked every path (unpack-plan.ts): '<volume>/<rel>', no empty, '.' or '..' part.
      const slash = p.path.indexOf('/');
      const root = slash > 0 ? this.rootBytes.get(p.path.slice(0, slash)) : undefined;
      if (!root) return;
      const rel = pathToBytes(p.path.slice(slash + 1));
      const r = Buffer.allocUnsafe(HEAD + root.length + 1 + rel.length + 1);
      const uid = chownTarget(p, this.settings.restoreOwnership, this.asRoot);
      const { sec, nsec } = splitNsString(p.mtime);
      r.writeUInt32LE(check, 0);
      r.writeUInt32LE(p.mode, 4);
      r.writeUInt32LE(umaskDrops(p.mode, this.umask) ? 1 : 0, 8);
      r.writeInt32LE(uid, 12);
      r.writeInt32LE(uid < 0 ? -1 : p.gid, 16);
      r.writeUInt32LE(nsec, 20);
      r.writeDoubleLE(sec, 24);
      r.writeUInt32LE(root.length, 32);
      r.writeUInt32LE(root.length + 1 + rel.length + 1, 36);
      root.copy(r, HEAD);
      r[HEAD + root.length] = SLASH;
      rel.copy(r, HEAD + root.length + 1);
      r[r.length - 1] = 0;
      records.push(r);
      files.push(p);
    });
    if (!files.length) return undefined;
    const all = Buffer.concat(records);
    return { buf: all.buffer.slice(all.byteOffset, all.byteOffset + all.length) as ArrayBuffer, files };
  }

  /** Marks the files the worker wrote (`results`: its answer to `encode`'s files). */
  settle(files: readonly PlanItem[], results: ArrayBuffer): void {
    const r = new Int32Array(results);
    files.forEach((p, i) => {
      if (r[i * 3] !== 1) return;
      p.written = true;
      if (r[i * 3 + 1] || r[i * 3 + 2]) p.writeErrnos = [r[i * 3 + 1]!, r[i * 3 + 2]!];
    });
  }

  /** No other unsettled entry at `path`, and none but directories at its parents' paths. */
  private alone(path: string): boolean {
    if (this.pending.get(path) !== 1) return false;
    for (let slash = path.lastIndexOf('/'); slash > 0; slash = path.lastIndexOf('/', slash - 1)) {
      if (this.pendingNonDirs.has(path.slice(0, slash))) return false;
    }
    return true;
  }
}

function bump(m: Map<string, number>, key: string, by: number): void {
  const n = (m.get(key) ?? 0) + by;
  if (n > 0) m.set(key, n);
  else m.delete(key);
}

/** Worker side: directories checked (or made) per unpack token; a few unpacks at a time. */
const checkedDirs = new Map<string, Set<string>>();
const MAX_TOKENS = 8;

function dirsOf(token: string): Set<string> {
  let set = checkedDirs.get(token);
  if (!set) {
    if (checkedDirs.size >= MAX_TOKENS) checkedDirs.delete(checkedDirs.keys().next().value!);
    set = new Set();
    checkedDirs.set(token, set);
  }
  return set;
}

/**
 * Writes the files of `writes` from the decoded `block` (after its checks passed). Returns the
 * per-file answers (see the header comment).
 */
export function applyDirectWrites(block: Buffer, checks: ArrayBuffer, writes: ArrayBuffer, token: string, native: NativeReads | undefined): ArrayBuffer {
  const w = Buffer.from(writes);
  let count = 0;
  for (let at = 0; at < w.length; at += HEAD + w.readUInt32LE(at + 36)) count++;
  const results = new Int32Array(count * 3);
  const writeFile = native?.writeSlots === WriteOut.Slots ? native.writeFile : undefined;
  if (!writeFile) return results.buffer;
  const c = Buffer.from(checks);
  const dirs = dirsOf(token);
  const out = new Int32Array(WriteOut.Slots);
  const digest = Buffer.alloc(32);
  for (let i = 0, at = 0; i < count; i++, at += HEAD + w.readUInt32LE(at + 36)) {
    const check = w.readUInt32LE(at) * 40;
    const offset = c.readUInt32LE(check);
    const length = c.readUInt32LE(check + 4);
    const rootLen = w.readUInt32LE(at + 32);
    const path = w.subarray(at + HEAD, at + HEAD + w.readUInt32LE(at + 36));
    if (offset + length > block.length || !parentsReady(path, rootLen, dirs)) continue;
    const uid = w.readInt32LE(at + 12);
    writeFile(
      path,
      block.subarray(offset, offset + length),
      w.readUInt32LE(at + 4),
      w.readUInt32LE(at + 8),
      uid,
      w.readInt32LE(at + 16),
      w.readDoubleLE(at + 24),
      w.readUInt32LE(at + 20),
      EMPTY,
      digest,
      out,
    );
    if (out[WriteOut.OpenErrno]) continue;
    if (out[WriteOut.WriteErrno] || out[WriteOut.ChmodErrno]) {
      // Left to the extractor, which removes what is in the way, retries and reports the error.
      unlinkQuiet(path.subarray(0, path.length - 1));
      continue;
    }
    results[i * 3] = 1;
    results[i * 3 + 1] = out[WriteOut.ChownErrno]!;
    results[i * 3 + 2] = out[WriteOut.TimeErrno]!;
  }
  return results.buffer;
}

/**
 * Whether every directory between the volume root (`path`'s first `rootLen` bytes) and the file
 * is a real directory, made if missing (0755 before the umask, as the extractor makes the
 * directories it was not given).
 */
function parentsReady(path: Buffer, rootLen: number, dirs: Set<string>): boolean {
  const name = path.lastIndexOf(SLASH, path.length - 2);
  if (name < rootLen) return false;
  const parent = path.subarray(0, name);
  if (dirs.has(parent.toString('latin1'))) return true;
  const root = path.subarray(0, rootLen);
  const rootKey = root.toString('latin1');
  if (!dirs.has(rootKey)) {
    // The root is the caller's: it may be reached through a symlink, as the extractor allows.
    if (!statSync(root, { throwIfNoEntry: false })?.isDirectory()) return false;
    dirs.add(rootKey);
  }
  for (let slash = path.indexOf(SLASH, rootLen + 1); slash > 0 && slash <= name; slash = path.indexOf(SLASH, slash + 1)) {
    const dir = path.subarray(0, slash);
    const key = dir.toString('latin1');
    if (dirs.has(key)) continue;
    let st = lstatSync(dir, { throwIfNoEntry: false });
    try {
      // Made here, or by someone else meanwhile (then checked as found).
      if (!st && !makeDirectory(dir, 0o755)) st = lstatSync(dir);
    } catch {
      return false;
    }
    if (st && !st.isDirectory()) return false;
    dirs.add(key);
  }
  return true;
}
