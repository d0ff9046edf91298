import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Journal, applyStaged, recoverLeftovers, stagingNames } from '@cairn/worker/node/staging.ts';
import { snapshotTree } from '../support/tree.ts';

function write(root: string, files: Record<string, string>): void {
  for (const [rel, content] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
    fs.writeFileSync(path.join(root, rel), content);
  }
}

const read = (root: string) =>
  Object.fromEntries(
    Object.entries(snapshotTree(root, { mtimes: false }))
      .filter(([, e]) => e.type === 'file')
      .map(([p]) => [p, fs.readFileSync(path.join(root, p), 'utf8')]),
  );

describe('applying a staged restore by renames', () => {
  let base: string;
  let live: string;
  let staging: string;
  let oldDir: string;
  beforeEach(() => {
    base = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-staging-'));
    live = path.join(base, 'live');
    staging = path.join(base, 'staging');
    oldDir = path.join(base, 'old');
    write(live, { x: 'old x', 'd/y': 'old y', keep: 'k' });
    write(staging, { x: 'new x', 'd/y': 'new y', 'd/z': 'new z' });
  });
  afterEach(() => fs.rmSync(base, { recursive: true, force: true }));

  it('replace: live becomes exactly the staged tree', async () => {
    await applyStaged({ staging, live, oldDir, mode: 'replace' });
    expect(read(live)).toEqual({ x: 'new x', 'd/y': 'new y', 'd/z': 'new z' });
  });

  it('replace with paths: only the chosen paths change', async () => {
    await applyStaged({ staging, live, oldDir, mode: 'replace', paths: ['d'] });
    expect(read(live)).toEqual({ x: 'old x', 'd/y': 'new y', 'd/z': 'new z', keep: 'k' });
  });

  it('merge: staged entries win, other live entries stay', async () => {
    await applyStaged({ staging, live, oldDir, mode: 'merge' });
    expect(read(live)).toEqual({ x: 'new x', 'd/y': 'new y', 'd/z': 'new z', keep: 'k' });
  });

  it('rollback puts back every displaced entry', async () => {
    const journal = new Journal();
    await applyStaged({ staging, live, oldDir, mode: 'merge', journal });
    expect(await journal.undo()).toBe(true);
    expect(read(live)).toMatchObject({ x: 'old x', 'd/y': 'old y', keep: 'k' });
  });
});

describe('recovering leftovers at worker start', () => {
  it('removes staging copies, restores a half-swapped volume, keeps an unfinished in-place old dir', async () => {
    const base = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-recover-'));
    const a = path.join(base, 'a');
    const b = path.join(base, 'b');
    write(a, { f: 'a' });
    const namesA = stagingNames('JOB1', a);
    write(path.join(base, namesA.staging), { partial: 'p' });
    write(path.join(a, namesA.old), { displaced: 'd' });
    const namesB = stagingNames('JOB2', b);
    write(path.join(base, namesB.old), { precious: 'keep me' });

    const result = await recoverLeftovers([a, b], async () => false);
    expect(fs.existsSync(path.join(base, namesA.staging))).toBe(false);
    expect(fs.readFileSync(path.join(b, 'precious'), 'utf8')).toBe('keep me');
    expect(result.restored).toEqual([b]);
    expect(result.kept).toEqual([path.join(a, namesA.old)]);
    fs.rmSync(base, { recursive: true, force: true });
  });
});
