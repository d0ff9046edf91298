import fs from 'node:fs/promises';
import path from 'node:path';
import { CairnError } from '@cairn/core';

/** Name prefixes of the directories a restore leaves beside (or inside) a volume while it runs. */
export const STAGING_PREFIX = '.cairn-staging-';
export const OLD_PREFIX = '.cairn-old-';
/**
 * Displaced live data that could not be put back (a failed undo, or an ambiguous leftover found at
 * start). Never removed by Cairn: the job's error (or the start-up log) names it for the operator.
 */
export const KEPT_PREFIX = '.cairn-kept-';
const CAIRN_PREFIXES = [STAGING_PREFIX, OLD_PREFIX, KEPT_PREFIX];

/** True for the names of Cairn's own restore directories (never moved or removed as volume content). */
export function isCairnName(name: string): boolean {
  return CAIRN_PREFIXES.some((p) => name.startsWith(p));
}

/** True when something (even a dangling symlink) is at `p`. */
export async function exists(p: string): Promise<boolean> {
  return fs.lstat(p).then(
    () => true,
    () => false,
  );
}

/** True when `dir` is a mount point (its device differs from its parent's), so it cannot be renamed away. */
export async function isMountPoint(dir: string): Promise<boolean> {
  const [self, parent] = await Promise.all([fs.stat(dir), fs.stat(path.dirname(dir))]);
  return self.dev !== parent.dev;
}

/**
 * Where `p` really is: its realpath when it exists, otherwise the realpath of its deepest existing
 * ancestor joined with the rest, following a dangling symlink at any level to its target.
 */
export async function resolveReal(p: string, depth = 0): Promise<string> {
  const abs = path.resolve(p);
  try {
    return await fs.realpath(abs);
  } catch {
    /* below */
  }
  if (depth > 40) return abs;
  const st = await fs.lstat(abs).catch(() => null);
  if (st?.isSymbolicLink()) return resolveReal(path.resolve(path.dirname(abs), await fs.readlink(abs)), depth + 1);
  const parent = path.dirname(abs);
  if (parent === abs) return abs;
  return path.join(await resolveReal(parent, depth + 1), path.basename(abs));
}

/**
 * Every rename (and directory or metadata change) an apply made on the live side, in order, so a
 * failure can be undone exactly by replaying it backwards.
 */
export type Step = { t: 'move'; from: string; to: string } | { t: 'mkdir'; dir: string } | { t: 'meta'; path: string; mode: number; atime: Date; mtime: Date };

export class Journal {
  readonly steps: Step[] = [];

  /** Renames `from` to `to` (same filesystem), creating `to`'s missing parents; both recorded. */
  async move(from: string, to: string): Promise<void> {
    const created = await fs.mkdir(path.dirname(to), { recursive: true });
    if (created) this.steps.push({ t: 'mkdir', dir: created });
    await fs.rename(from, to);
    this.steps.push({ t: 'move', from, to });
  }

  /** Sets a directory's mode and times, remembering the previous ones. */
  async setMeta(target: string, mode: number, atime: Date, mtime: Date): Promise<void> {
    const st = await fs.lstat(target);
    this.steps.push({ t: 'meta', path: target, mode: st.mode & 0o7777, atime: st.atime, mtime: st.mtime });
    await fs.chmod(target, mode);
    await fs.utimes(target, atime, mtime);
  }

  /**
   * Undoes every recorded step, newest first. A step that cannot be undone is skipped (the others
   * still are); returns false when any was, so the caller keeps what it displaced.
   */
  async undo(): Promise<boolean> {
    let clean = true;
    for (const step of this.steps.splice(0).reverse()) {
      try {
        if (step.t === 'move') {
          await fs.mkdir(path.dirname(step.from), { recursive: true });
          await fs.rename(step.to, step.from);
        } else if (step.t === 'mkdir') {
          // Only empty scaffolding of our own should be left in it; anything else stays.
          await removeEmptyTree(step.dir);
        } else {
          await fs.chmod(step.path, step.mode);
          await fs.utimes(step.path, step.atime, step.mtime);
        }
      } catch {
        clean = false;
      }
    }
    return clean;
  }
}

/** Removes a tree of empty directories; throws (removing nothing more) when it holds anything else. */
export async function removeEmptyTree(dir: string): Promise<void> {
  const entries = await fs.readdir(dir, { withFileTypes: true }).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return null;
    throw err;
  });
  if (!entries) return;
  for (const e of entries) {
    if (!e.isDirectory()) throw new Error(`${path.join(dir, e.name)} is not an empty directory`);
    await removeEmptyTree(path.join(dir, e.name));
  }
  await fs.rmdir(dir);
}

/**
 * Fails unless every directory between `root` and `rel`'s last component is a real directory in
 * `root` (not a symlink): a rename through a symlinked parent would move data outside the volume.
 */
async function assertNoSymlinkedParent(root: string, rel: string): Promise<void> {
  const parts = rel.split('/').filter(Boolean);
  let at = root;
  for (const part of parts.slice(0, -1)) {
    at = path.join(at, part);
    const st = await fs.lstat(at).catch(() => null);
    if (!st) return; // the rest does not exist yet: created by us as real directories
    if (st.isSymbolicLink()) throw new CairnError('unsafe-path', `${at} is a symlink: restoring ${rel} would write outside the volume`);
    if (!st.isDirectory()) throw new CairnError('unsafe-path', `${at} is not a directory: cannot restore ${rel} below it`);
  }
}

/**
 * Applies a staged tree onto a live directory by renames only (staging is on the same
 * filesystem), keeping everything it displaces under `oldDir` and recording each change in
 * `journal` so that a failure can be undone exactly.
 * - `replace` with no paths: live becomes exactly staging (top-level entries swapped).
 * - `replace` with paths: each chosen path becomes exactly its staged copy (or disappears when the
 *   backup did not have it).
 * - merge: staged entries are written over live ones; directories are merged, other live entries kept.
 * Cairn's own directories in live (staging, old and kept dirs of this or earlier restores) are
 * never moved.
 */
export async function applyStaged(opts: {
  staging: string;
  live: string;
  oldDir: string;
  mode: 'replace' | 'merge';
  paths?: string[];
  journal?: Journal;
}): Promise<void> {
  const { staging, live, oldDir, mode } = opts;
  const journal = opts.journal ?? new Journal();
  await fs.mkdir(oldDir, { recursive: true });
  if (mode === 'replace' && !opts.paths?.length) {
    for (const name of await fs.readdir(live)) if (!isCairnName(name)) await journal.move(path.join(live, name), path.join(oldDir, name));
    // Cairn leftovers a backup picked up are not restored over the ones live keeps.
    for (const name of await fs.readdir(staging)) if (!isCairnName(name)) await journal.move(path.join(staging, name), path.join(live, name));
    return;
  }
  if (mode === 'replace') {
    for (const rel of opts.paths!) await assertNoSymlinkedParent(live, rel);
    for (const rel of opts.paths!) {
      const target = path.join(live, rel);
      if (await exists(target)) await journal.move(target, path.join(oldDir, rel));
      const staged = path.join(staging, rel);
      if (await exists(staged)) await journal.move(staged, target);
    }
    return;
  }
  await mergeInto(staging, live, oldDir, '', journal);
}

async function mergeInto(staging: string, live: string, oldDir: string, rel: string, journal: Journal): Promise<void> {
  for (const entry of await fs.readdir(path.join(staging, rel), { withFileTypes: true })) {
    if (!rel && isCairnName(entry.name)) continue;
    const childRel = path.join(rel, entry.name);
    const target = path.join(live, childRel);
    const current = await fs.lstat(target).catch(() => null);
    if (entry.isDirectory() && current?.isDirectory()) {
      await mergeInto(staging, live, oldDir, childRel, journal);
      // Keep the backup's directory metadata.
      const st = await fs.lstat(path.join(staging, childRel));
      await journal.setMeta(target, st.mode & 0o7777, st.atime, st.mtime);
      continue;
    }
    if (current) await journal.move(target, path.join(oldDir, childRel));
    await journal.move(path.join(staging, childRel), target);
  }
}

/** Directory names a restore of job `jobId` uses for one volume directory `live`. */
export function stagingNames(jobId: string, live: string): { staging: string; old: string; kept: string } {
  const base = path.basename(live);
  return { staging: `${STAGING_PREFIX}${jobId}.${base}`, old: `${OLD_PREFIX}${jobId}.${base}`, kept: `${KEPT_PREFIX}${jobId}.${base}` };
}

/** The job id in a `<prefix><jobId>.<base>` name when it is exactly that for this `base`, else null. */
function jobOfName(name: string, prefix: string, base?: string): string | null {
  if (!name.startsWith(prefix)) return null;
  const rest = name.slice(prefix.length);
  const dot = rest.indexOf('.');
  if (dot <= 0) return null;
  if (base !== undefined && rest.slice(dot + 1) !== base) return null;
  return rest.slice(0, dot);
}

/**
 * Cleans what restores that never finished left around the given volume directories (worker
 * start; nothing of this node runs yet). Each path is resolved as the restore resolved it
 * (symlinks followed), and names are matched exactly (`.cairn-old-<job>.data` is not a leftover
 * of a volume called `app.data`).
 * - Staging copies are removed.
 * - A displaced live directory beside a volume (`.cairn-old-<job>.<name>`) is put back when the
 *   volume is missing (the swap was cut in half); removed when the swap completed (its staging
 *   copy is gone: it was renamed into place); otherwise (live re-created while the swap was cut,
 *   or a merge cut short) renamed to `.cairn-kept-<job>.<name>` and reported, never removed.
 * - Old dirs inside a volume (mount-point restores) are removed only when `succeeded(jobId)`
 *   says the restore finished; otherwise they are kept and reported.
 */
export async function recoverLeftovers(
  volumeDirs: Iterable<string>,
  succeeded: (jobId: string) => Promise<boolean>,
): Promise<{ removed: string[]; restored: string[]; kept: string[] }> {
  const out = { removed: [] as string[], restored: [] as string[], kept: [] as string[] };
  const lives = new Set<string>();
  for (const dir of volumeDirs) lives.add(await resolveReal(dir));
  for (const live of lives) {
    const parent = path.dirname(live);
    const base = path.basename(live);
    const names = await fs.readdir(parent).catch(() => [] as string[]);
    const stagingJobs = new Set(names.map((n) => jobOfName(n, STAGING_PREFIX, base)).filter((j): j is string => j !== null));
    for (const name of names) {
      const full = path.join(parent, name);
      if (jobOfName(name, STAGING_PREFIX, base) !== null) {
        await fs.rm(full, { recursive: true, force: true });
        out.removed.push(full);
        continue;
      }
      const job = jobOfName(name, OLD_PREFIX, base);
      if (job === null) continue;
      if (!(await exists(live))) {
        await fs.rename(full, live);
        out.restored.push(live);
      } else if (!stagingJobs.has(job)) {
        await fs.rm(full, { recursive: true, force: true });
        out.removed.push(full);
      } else {
        const kept = path.join(parent, stagingNames(job, live).kept);
        await fs.rename(full, kept);
        out.kept.push(kept);
      }
    }
    for (const name of await fs.readdir(live).catch(() => [] as string[])) {
      const full = path.join(live, name);
      if (name.startsWith(STAGING_PREFIX)) {
        await fs.rm(full, { recursive: true, force: true });
        out.removed.push(full);
      } else if (name.startsWith(OLD_PREFIX)) {
        const job = jobOfName(name, OLD_PREFIX);
        if (job && (await succeeded(job))) {
          await fs.rm(full, { recursive: true, force: true });
          out.removed.push(full);
        } else out.kept.push(full);
      }
    }
  }
  return out;
}
