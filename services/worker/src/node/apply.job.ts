import fs from 'node:fs/promises';
import { chmodSync, lchownSync, lstatSync, readdirSync, readlinkSync } from 'node:fs';
import { z } from 'zod';
import { backupRangeSource, CairnError, frameOpenerFor, keyringOf, openIndexObject } from '@cairn/core';
import { eachEntry, pathToBytes, rangeReadsOf, readIndex, unpackArchive, type ArchiveEntry, type StreamedIndex } from '@cairn/core/archive/index.ts';
import { loadNativeReads, nativeAddonPath } from '@cairn/core/archive/native-reads.ts';
import { EntrySpill } from '@cairn/core/archive/entry-spill.ts';
import { ParentCursor } from '@cairn/core/archive/pack-reuse.ts';
import { createTimeSetter } from '@cairn/core/archive/time-setter.ts';
import type { JobRun, JobWork, WorkOutcome } from '../job-lifecycle.ts';
import { writeBaseline } from './baseline.ts';
import { unownedDirs } from './registered-volumes.ts';
import type { NodeContext } from './node-context.ts';
import { isCairnName } from './staging.ts';

const applyParams = z
  .object({
    /** Volume name -> the directory on this node holding the base backup's tree (a move's bulk copy). */
    hostPaths: z.record(z.string(), z.string()),
    /** The backup those directories hold; the job's backup is an incremental of it. */
    baseBackupId: z.string().min(1),
    /** The pending Backup to complete as the target's stat baseline (baseline.ts). */
    baseline: z.string().optional(),
  })
  .strict();

export interface ApplyResult {
  deleted: number;
  extracted: number;
  unchanged: number;
  bytesWritten: number;
  notes: string[];
}

/** Paths to remove and to extract to turn the base backup's tree into the job's backup's. */
interface Changes {
  deletes: string[];
  extract: string[];
  unchanged: number;
}

/**
 * A move's cutover on the target node (issue 12): the directories there hold the bulk backup's
 * tree (restored by the migrate, registered to no instance yet); this applies only what the final
 * incremental backup changed: entries gone are removed, new and changed ones extracted (read
 * from only the frames that hold them), every directory's mode and time set as backed up. Then
 * every entry of the final backup is checked on the target (type, size, mode, mtime to the
 * nanosecond, link targets; files extracted here also by sha256, and nothing extra), and the stat
 * baseline is written. The quiesced window of a move is this job plus the final backup, not a
 * whole restore.
 *
 * Not undone on failure: the directories are not live, and the migrate discards them.
 */
export class ApplyJob implements JobWork<ApplyResult> {
  constructor(private readonly ctx: NodeContext) {}

  async run(run: JobRun): Promise<WorkOutcome<ApplyResult>> {
    const { ctx } = this;
    const params = applyParams.parse(run.job?.params ?? {});
    const final = run.job?.backupId ? await ctx.records.backups.get(run.job.backupId) : null;
    const base = await ctx.records.backups.get(params.baseBackupId);
    if (final?.status !== 'completed') throw new CairnError('conflict', `backup ${run.job?.backupId} is ${final?.status ?? 'missing'}, not completed`);
    if (base?.status !== 'completed') throw new CairnError('conflict', `base backup ${params.baseBackupId} is ${base?.status ?? 'missing'}, not completed`);
    const dirs = await this.targetDirs(params.hostPaths);

    run.progress('reading-index');
    const keyring = keyringOf(ctx.config as never);
    const index = await readIndex(openIndexObject(keyring, final, await ctx.store.get(final.indexKey, { signal: run.signal })));
    let baseIndex: StreamedIndex | undefined;
    try {
      baseIndex = await readIndex(openIndexObject(keyring, base, await ctx.store.get(base.indexKey, { signal: run.signal })));
      const open = await frameOpenerFor(keyring, ctx.records.backups, final, index);
      const changes = diffTrees(baseIndex, index);
      run.progress('applying');
      const notes: string[] = [];
      for (const p of changes.deletes) await fs.rm(targetPath(dirs, p), { recursive: true, force: true });
      let bytesWritten = 0;
      if (changes.extract.length) {
        const result = await unpackArchive({
          target: Object.values(dirs)[0]!,
          volumeDirs: dirs,
          index,
          paths: changes.extract,
          source: backupRangeSource(ctx.store, final, index.codec, run.signal, ctx.config.STORE_THREAD ?? true),
          rangeReads: rangeReadsOf(ctx.config),
          ...(open ? { open } : {}),
          signal: run.signal,
          restoreOwnership: process.getuid?.() === 0,
          onProgress: (p) => run.progress('applying', p),
        });
        bytesWritten = result.bytesWritten;
        notes.push(...result.warnings.map((w) => `${w.path}: ${w.message}`));
      }
      setDirectoryMeta(index, dirs);
      run.progress('verifying');
      verifyTree(index, dirs);
      if (params.baseline) {
        const written = await writeBaseline(ctx, run, { backupId: params.baseline, of: final, index, dirs });
        notes.push(written ? `stat baseline written as backup ${params.baseline}` : `no stat baseline: backup ${params.baseline} was not written`);
      }
      run.progress('done');
      const result = { deleted: changes.deletes.length, extracted: changes.extract.length, unchanged: changes.unchanged, bytesWritten, notes };
      run.log.info({ ...result, notes: undefined }, 'cutover applied');
      return { status: 'succeeded', result };
    } finally {
      index.entries.close();
      baseIndex?.entries.close();
    }
  }

  /** The host paths, resolved (unownedDirs), each holding the bulk copy. */
  private async targetDirs(hostPaths: Record<string, string>): Promise<Record<string, string>> {
    const dirs = await unownedDirs(this.ctx, hostPaths, "a cutover applies only to a migrate's own copy");
    for (const [name, real] of Object.entries(dirs))
      if (!(await fs.stat(real).catch(() => null))?.isDirectory())
        throw new CairnError('conflict', `${hostPaths[name]} (volume ${name}) does not hold the bulk copy`);
    return dirs;
  }
}

const sameContent = (b: ArchiveEntry, e: ArchiveEntry): boolean =>
  b.type === e.type &&
  b.size === e.size &&
  b.mode === e.mode &&
  b.uid === e.uid &&
  b.gid === e.gid &&
  b.mtime === e.mtime &&
  b.sha256 === e.sha256 &&
  b.linkTarget === e.linkTarget;

/**
 * What turns the base tree into the final one, in two passes over the final entries (they may be
 * on disk). The base's entries are read beside them (same archive order); one the final tree
 * does not have is deleted. A hard link group (a file and the links to it) is extracted whole
 * when any member changed: extracting a file makes a new inode, which old links would not share.
 */
export function diffTrees(base: StreamedIndex, final: StreamedIndex): Changes {
  const deletes: string[] = [];
  const volumes = final.volumes.map((v) => v.name);
  if (!(base.entries instanceof EntrySpill)) throw new CairnError('internal', 'the base index must be read with readIndex');
  const cursor = new ParentCursor(base.entries.share(), volumes, (e) => deletes.push(e.path));
  const extract: string[] = [];
  const changedFiles = new Set<string>();
  const changedGroups = new Set<string>();
  let newDir: string | undefined;
  let unchanged = 0;
  for (const e of eachEntry(final.entries)) {
    const hit = cursor.find(e.path, pathToBytes(e.path), e.type === 'dir');
    // Inside a new directory, selected whole already.
    if (newDir !== undefined && e.path.startsWith(newDir)) continue;
    newDir = undefined;
    if (!hit) {
      if (e.type === 'dir') newDir = `${e.path}/`;
      if (e.type === 'hardlink') changedGroups.add(e.linkTarget!);
      else if (e.type === 'file') changedFiles.add(e.path);
      if (e.type !== 'hardlink') extract.push(e.path);
      continue;
    }
    if (e.type === 'dir') {
      unchanged++; // its mode and time are set for every directory
      continue;
    }
    if (sameContent(hit.entry, e)) {
      unchanged++;
      continue;
    }
    if (e.type === 'hardlink') changedGroups.add(e.linkTarget!);
    else {
      if (e.type === 'file') changedFiles.add(e.path);
      extract.push(e.path);
    }
  }
  cursor.finish();
  // Second pass: the hard link groups that changed, whole.
  const chosen = new Set(extract);
  for (const e of eachEntry(final.entries)) {
    if (newDir !== undefined && e.path.startsWith(newDir)) continue;
    const group = e.type === 'hardlink' ? e.linkTarget! : e.path;
    const whole = changedGroups.has(group) || (e.type === 'hardlink' && changedFiles.has(group));
    if (whole && !chosen.has(e.path) && (e.type === 'hardlink' || e.type === 'file')) {
      chosen.add(e.path);
      extract.push(e.path);
      unchanged--;
    }
  }
  return { deletes, extract, unchanged: Math.max(0, unchanged) };
}

/** '<volume>/<rel>' on the target, as bytes (names are bytes). */
function targetPath(dirs: Record<string, string>, archivePath: string): Buffer {
  const slash = archivePath.indexOf('/');
  const volume = slash < 0 ? archivePath : archivePath.slice(0, slash);
  const dir = dirs[volume];
  if (!dir) throw new CairnError('internal', `no target directory for volume ${volume}`);
  if (slash < 0) return Buffer.from(dir);
  const rel = archivePath.slice(slash + 1);
  if (rel.split('/').some((c) => c === '' || c === '.' || c === '..')) throw new CairnError('unsafe-path', `${archivePath} is not a clean path`);
  return Buffer.concat([Buffer.from(`${dir}/`), pathToBytes(rel)]);
}

/** Every directory's mode, owner and time as backed up (after its content changed). */
function setDirectoryMeta(index: StreamedIndex, dirs: Record<string, string>): void {
  const times = createTimeSetter(loadNativeReads(nativeAddonPath()));
  const root = process.getuid?.() === 0;
  const list: ArchiveEntry[] = [];
  for (const e of eachEntry(index.entries)) if (e.type === 'dir') list.push(e);
  // Deepest first: setting a child's metadata never changes its parent's time, but be safe.
  list.reverse();
  for (const e of list) {
    const p = targetPath(dirs, e.path);
    if (root) lchownSync(p, e.uid, e.gid);
    chmodSync(p, e.mode);
    times.set(p, BigInt(e.mtime));
  }
  if (times.failures.length) throw new CairnError('internal', `could not set the time of ${times.failures[0]!.path.toString()}: ${times.failures[0]!.reason}`);
}

/**
 * The target tree against the final backup's index: every entry there with its type, size,
 * mode, mtime (ns) and link target, and nothing else (Cairn's own staging names aside).
 */
function verifyTree(index: StreamedIndex, dirs: Record<string, string>): void {
  const fail = (path: string, why: string): never => {
    throw new CairnError('checksum-mismatch', `after the cutover, ${path} on the target does not match the backup: ${why}`);
  };
  let expected = 0;
  for (const e of eachEntry(index.entries)) {
    expected++;
    const p = targetPath(dirs, e.path);
    const st = lstatSync(p, { bigint: true, throwIfNoEntry: false });
    if (!st) fail(e.path, 'missing');
    const type = st!.isDirectory() ? 'dir' : st!.isSymbolicLink() ? 'symlink' : st!.isFile() ? 'file' : 'other';
    const want = e.type === 'hardlink' ? 'file' : e.type;
    if (type !== want) fail(e.path, `a ${type}, not a ${want}`);
    if (e.type === 'file' && Number(st!.size) !== e.size) fail(e.path, `${st!.size} bytes, not ${e.size}`);
    if (e.type === 'symlink') {
      if (readlinkSync(p, { encoding: 'buffer' }).compare(pathToBytes(e.linkTarget ?? '')) !== 0) fail(e.path, 'another link target');
      continue;
    }
    if (Number(st!.mode & 0o7777n) !== e.mode) fail(e.path, `mode ${(Number(st!.mode) & 0o7777).toString(8)}, not ${e.mode.toString(8)}`);
    if (e.type !== 'hardlink' && st!.mtimeNs.toString() !== e.mtime) fail(e.path, `mtime ${st!.mtimeNs} ns, not ${e.mtime}`);
  }
  let found = 0;
  const walk = (dir: Buffer): void => {
    found++;
    for (const name of readdirSync(dir, { encoding: 'buffer' })) {
      if (isCairnName(name.toString('latin1'))) continue;
      const p = Buffer.concat([dir, Buffer.from('/'), name]);
      if (lstatSync(p).isDirectory()) walk(p);
      else found++;
    }
  };
  for (const dir of Object.values(dirs)) walk(Buffer.from(dir));
  if (found !== expected) throw new CairnError('checksum-mismatch', `after the cutover the target holds ${found} entries, the backup ${expected}`);
}
