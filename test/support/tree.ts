import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

export interface TreeEntry {
  type: 'file' | 'dir' | 'symlink' | 'other';
  size?: number;
  mode: number;
  mtimeNs?: string;
  link?: string;
  sha256?: string;
}

/** A comparable snapshot of a directory tree: type, size, mode, mtime (ns), link target, content hash. */
export function snapshotTree(root: string, opts: { mtimes?: boolean; ignore?: (rel: string) => boolean } = {}): Record<string, TreeEntry> {
  const out: Record<string, TreeEntry> = {};
  const walk = (rel: string) => {
    const full = path.join(root, rel);
    const st = fs.lstatSync(full, { bigint: true });
    const base = { mode: Number(st.mode & 0o7777n), ...(opts.mtimes === false ? {} : { mtimeNs: st.mtimeNs.toString() }) };
    if (st.isDirectory()) {
      if (rel) out[rel] = { type: 'dir', ...base, mtimeNs: undefined };
      for (const name of fs.readdirSync(full).sort()) {
        const child = rel ? `${rel}/${name}` : name;
        if (!opts.ignore?.(child)) walk(child);
      }
      if (rel && opts.mtimes !== false) out[rel]!.mtimeNs = base.mtimeNs;
    } else if (st.isSymbolicLink()) {
      out[rel] = { type: 'symlink', mode: 0, link: fs.readlinkSync(full) };
    } else if (st.isFile()) {
      out[rel] = { type: 'file', ...base, size: Number(st.size), sha256: createHash('sha256').update(fs.readFileSync(full)).digest('hex') };
    } else out[rel] = { type: 'other', ...base };
  };
  walk('');
  return out;
}
