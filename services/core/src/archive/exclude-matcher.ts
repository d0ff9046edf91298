/**
 * Volume excludes: picomatch globs against the path relative to the volume. As in .gitignore,
 * a pattern without a slash matches a name at any depth; one with a slash (leading or inside)
 * is relative to the volume root; a trailing slash is ignored (an excluded directory drops its
 * whole subtree).
 */
import picomatch from 'picomatch';

type ExcludeMatcher = (relPath: string) => boolean;

export function compileExcludes(patterns: readonly string[] | undefined): ExcludeMatcher | undefined {
  const anchored: string[] = [];
  const floating: string[] = [];
  for (const raw of patterns ?? []) {
    let p = raw.trim();
    if (!p) continue;
    while (p.length > 1 && p.endsWith('/')) p = p.slice(0, -1);
    if (p.startsWith('/')) anchored.push(p.replace(/^\/+/, ''));
    else if (p.startsWith('./')) anchored.push(p.slice(2));
    else if (p.includes('/')) anchored.push(p);
    else floating.push(p);
  }
  if (!anchored.length && !floating.length) return undefined;
  const a = anchored.length ? picomatch(anchored, { dot: true }) : undefined;
  const f = floating.length ? picomatch(floating, { dot: true, basename: true }) : undefined;
  return (rel) => (a?.(rel) ?? false) || (f?.(rel) ?? false);
}
