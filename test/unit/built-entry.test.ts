/**
 * scripts/built.mjs, which `npm run worker` runs to get the node worker compiled from the current
 * sources: a build that runs (its archive-thread code found where the bundle looks for it, after
 * the build was renamed into place), reused while the sources are unchanged.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '../..');
const built = (entry: string) => execFileSync(process.execPath, ['scripts/built.mjs', entry], { cwd: root, encoding: 'utf8' });

describe('scripts/built.mjs', () => {
  it('prints a compiled worker that starts, finds its archive-thread code, and is reused while the sources are unchanged', () => {
    const worker = built('worker');
    expect(worker).toMatch(/\/\.cairn\/build\/[0-9a-f]{16}\/worker\.js$/);
    expect(existsSync(worker)).toBe(true);
    // The bundle looks for the archive worker relative to worker-bundle.ts's source location.
    const rel = /"([^"]*archive\.worker\.cjs)"/.exec(readFileSync(worker, 'utf8'))?.[1];
    expect(rel).toBeDefined();
    expect(existsSync(resolve(root, 'services/core/src/archive', rel!))).toBe(true);
    expect(dirname(resolve(root, 'services/core/src/archive', rel!))).toBe(dirname(worker));
    // It runs: without a role it prints its usage.
    const run = spawnSync(process.execPath, [worker], { cwd: root, encoding: 'utf8' });
    expect(run.status).toBe(2);
    expect(run.stderr).toContain('usage: worker --node');
    expect(built('worker')).toBe(worker);
  }, 60_000);

  it('refuses an unknown entry', () => {
    const run = spawnSync(process.execPath, ['scripts/built.mjs', 'nope'], { cwd: root, encoding: 'utf8' });
    expect(run.status).toBe(2);
    expect(run.stderr).toContain('usage: node scripts/built.mjs');
  });
});
