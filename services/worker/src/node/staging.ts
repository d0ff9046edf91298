import fs from 'node:fs/promises';
import path from 'node:path';

/** Name prefixes of the directories a restore leaves beside (or inside) a volume while it runs. */
export const STAGING_PREFIX = '.cairn-staging-';
export const OLD_PREFIX = '.cairn-old-';

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

/** Moves `from` to `to` (same filesystem), creating `to`'s parent directories. */
async function move(from: string, to: string): Promise<void> {
  await fs.mkdir(path.dirname(to), { recursive: true });
  await fs.rename(from, to);
}

/**
 * Applies a staged tree onto a live directory by renames only (staging is on the same
 * filesystem), keeping everything it displaces under `oldDir` so a failure can be undone.
 * - `replace` with no paths: live becomes exactly staging (top-level entries swapped).
 * - `replace` with paths: each chosen path becomes exactly its staged copy (or disappears when the
 *   backup did not have it).
 * - merge: staged entries are written over live ones; directories are merged, other live entries kept.
 * `skip` names entries of live that belong to Cairn (staging/old dirs inside a mount point).
 */
export async function applyStaged(opts: { staging: string; live: string; oldDir: string; mode: 'replace' | 'merge'; paths?: string[]; skip?: Set<string> }): Promise<void> {
  const { staging, live, oldDir, mode } = opts;
  const skip = opts.skip ?? new Set<string>();
  await fs.mkdir(oldDir, { recursive: true });
  if (mode === 'replace' && !opts.paths?.length) {
    for (const name of await fs.readdir(live)) if (!skip.has(name)) await move(path.join(live, name), path.join(oldDir, name));
    for (const name of await fs.readdir(staging)) await move(path.join(staging, name), path.join(live, name));
    return;
  }
  if (mode === 'replace') {
    for (const rel of opts.paths!) {
      const target = path.join(live, rel);
      if (await exists(target)) await move(target, path.join(oldDir, rel));
      const staged = path.join(staging, rel);
      if (await exists(staged)) await move(staged, target);
    }
    return;
  }
  await mergeInto(staging, live, oldDir, '');
}

async function mergeInto(staging: string, live: string, oldDir: string, rel: string): Promise<void> {
  for (const entry of await fs.readdir(path.join(staging, rel), { withFileTypes: true })) {
    const childRel = path.join(rel, entry.name);
    const target = path.join(live, childRel);
    const current = await fs.lstat(target).catch(() => null);
    if (entry.isDirectory() && current?.isDirectory()) {
      await mergeInto(staging, live, oldDir, childRel);
      // Keep the backup's directory metadata.
      const st = await fs.lstat(path.join(staging, childRel));
      await fs.chmod(target, st.mode & 0o7777);
      await fs.utimes(target, st.atime, st.mtime);
      continue;
    }
    if (current) await move(target, path.join(oldDir, childRel));
    await move(path.join(staging, childRel), target);
  }
}

/** Directory names a restore of job `jobId` uses for one volume directory `live`. */
export function stagingNames(jobId: string, live: string): { staging: string; old: string } {
  const base = path.basename(live);
  return { staging: `${STAGING_PREFIX}${jobId}.${base}`, old: `${OLD_PREFIX}${jobId}.${base}` };
}

/**
 * Cleans what restores that never finished left around the given volume directories (worker
 * start). Staging copies are removed. A displaced live directory (`.cairn-old-<job>.<name>`
 * beside it) is put back when the live one is missing (the swap was cut in half), and removed
 * when the swap had completed. Old dirs inside a volume (mount-point restores) are removed only
 * when `succeeded(jobId)` says the restore finished; otherwise they are kept and reported.
 */
export async function recoverLeftovers(volumeDirs: Iterable<string>, succeeded: (jobId: string) => Promise<boolean>): Promise<{ removed: string[]; restored: string[]; kept: string[] }> {
  const out = { removed: [] as string[], restored: [] as string[], kept: [] as string[] };
  const jobOf = (name: string, prefix: string) => name.slice(prefix.length).split('.')[0] ?? '';
  for (const live of new Set(volumeDirs)) {
    const parent = path.dirname(live);
    for (const name of await fs.readdir(parent).catch(() => [] as string[])) {
      const full = path.join(parent, name);
      if (name.startsWith(STAGING_PREFIX) && name.endsWith(`.${path.basename(live)}`)) {
        await fs.rm(full, { recursive: true, force: true });
        out.removed.push(full);
      } else if (name.startsWith(OLD_PREFIX) && name.endsWith(`.${path.basename(live)}`)) {
        if (await exists(live)) {
          await fs.rm(full, { recursive: true, force: true });
          out.removed.push(full);
        } else {
          await fs.rename(full, live);
          out.restored.push(live);
        }
      }
    }
    for (const name of await fs.readdir(live).catch(() => [] as string[])) {
      const full = path.join(live, name);
      if (name.startsWith(STAGING_PREFIX)) {
        await fs.rm(full, { recursive: true, force: true });
        out.removed.push(full);
      } else if (name.startsWith(OLD_PREFIX)) {
        if (await succeeded(jobOf(name, OLD_PREFIX))) {
          await fs.rm(full, { recursive: true, force: true });
          out.removed.push(full);
        } else out.kept.push(full);
      }
    }
  }
  return out;
}

/**
 * Undoes a partly applied `applyStaged`: every entry displaced into `oldDir` goes back to its
 * place in `live` (replacing whatever was moved there). Directories that exist on both sides are
 * descended into. Returns true when `oldDir` is left empty.
 */
export async function rollbackStaged(live: string, oldDir: string, rel = ''): Promise<boolean> {
  let clean = true;
  for (const entry of await fs.readdir(path.join(oldDir, rel), { withFileTypes: true }).catch(() => [])) {
    const childRel = path.join(rel, entry.name);
    const target = path.join(live, childRel);
    const current = await fs.lstat(target).catch(() => null);
    if (entry.isDirectory() && current?.isDirectory() && !(await fs.readdir(path.join(oldDir, childRel))).length) continue;
    if (entry.isDirectory() && current?.isDirectory()) {
      clean = (await rollbackStaged(live, oldDir, childRel)) && clean;
      continue;
    }
    try {
      if (current) await fs.rm(target, { recursive: true, force: true });
      await move(path.join(oldDir, childRel), target);
    } catch {
      clean = false;
    }
  }
  return clean;
}
