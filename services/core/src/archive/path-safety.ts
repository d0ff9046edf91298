/**
 * Containment rules for extraction (SPEC §7): an archive path must be '<volume>' or
 * '<volume>/<rel>' with plain components — no absolute paths, no '.', '..' or empty components,
 * no NUL. Writing through symlinks is prevented by the extractor, which never follows one.
 */
import { CairnError } from '../errors.ts';
import type { ArchiveEntry } from './archive-types.ts';

interface SplitPath {
  volume: string;
  /** Components below the volume root (empty for the root itself). */
  parts: string[];
}

export function unsafe(path: string, why: string): CairnError {
  return new CairnError('unsafe-path', `unsafe path ${JSON.stringify(path)} in archive: ${why}`, { details: { path } });
}

export function splitArchivePath(path: string): SplitPath {
  if (path.length === 0) throw unsafe(path, 'empty');
  if (path.startsWith('/')) throw unsafe(path, 'absolute path');
  if (path.includes('\0')) throw unsafe(path, 'NUL byte');
  const parts = path.split('/');
  for (const p of parts) {
    if (p === '..') throw unsafe(path, "'..' component");
    if (p === '' || p === '.') throw unsafe(path, 'empty or "." component');
  }
  return { volume: parts[0]!, parts: parts.slice(1) };
}

/**
 * Checks one entry of an index before anything is written (one hostile entry condemns the
 * whole archive): its path is plain and inside a listed volume.
 */
export function checkEntryPath(e: ArchiveEntry, volumes: ReadonlySet<string>): string {
  const { volume } = splitArchivePath(e.path);
  if (!volumes.has(volume)) throw unsafe(e.path, `volume ${volume} is not listed in the index`);
  return volume;
}

/**
 * Checks an entry to extract, once every symlink entry of the archive is known: its hard-link
 * target is in its own volume, and neither its path nor that target sits below a symlink entry
 * (a write through it).
 */
export function checkChosen(e: ArchiveEntry, symlinks: ReadonlySet<string>): void {
  const { volume } = splitArchivePath(e.path);
  const throughSymlink = (p: string): void => {
    for (let i = p.indexOf('/'); i > 0; i = p.indexOf('/', i + 1)) {
      if (symlinks.has(p.slice(0, i))) throw unsafe(e.path, `goes through the symlink ${p.slice(0, i)}`);
    }
  };
  if (symlinks.size) throughSymlink(e.path);
  if (e.type === 'hardlink') {
    if (!e.linkTarget) throw unsafe(e.path, 'hard link without a target');
    const t = splitArchivePath(e.linkTarget);
    if (t.volume !== volume) throw unsafe(e.path, 'hard link to another volume');
    if (symlinks.size) throughSymlink(e.linkTarget);
  }
}
