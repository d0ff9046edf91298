import path from 'node:path';

/** True when `p` equals `root` or lies below it, on a path-component boundary (both absolute, normalised). */
export function isInside(p: string, root: string): boolean {
  const rel = path.relative(root, p);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

/** The volume root that contains `p`, or undefined. */
export function containingRoot(p: string, roots: readonly string[]): string | undefined {
  return roots.find((root) => isInside(p, root));
}
