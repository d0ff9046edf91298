import { describe, expect, it } from 'vitest';
import { CairnError, MemoryRecords, newId } from '@cairn/core';
import { chooseBackupKind, decideBackupKind, incrementalsSince, type KindRequest, type KindRow } from '@cairn/core/domain/backup-kind.ts';

/** The choice of a new backup's kind and parent (domain/backup-kind.ts): pure, from rows. */

let seq = 0;
const t0 = Date.UTC(2026, 0, 1);

/** A completed format 2 zstd backup of volumes a and b, completed after every earlier one made here. */
function row(over: Partial<KindRow> = {}): KindRow {
  seq++;
  return {
    id: `b${String(seq).padStart(4, '0')}`,
    instanceId: 'i1',
    status: 'completed',
    kind: 'full',
    parentId: null,
    volumes: ['a', 'b'],
    compression: 'zstd',
    format: 2,
    deletedAt: null,
    completedAt: new Date(t0 + seq * 60_000),
    ...over,
  };
}

/** A full backup followed by `n` incrementals, each on the one before. */
function chain(n: number, over: Partial<KindRow> = {}): KindRow[] {
  const rows = [row(over)];
  for (let i = 0; i < n; i++) rows.push(row({ ...over, kind: 'incremental', parentId: rows[rows.length - 1]!.id }));
  return rows;
}

const request = (over: Partial<KindRequest> = {}): KindRequest => ({
  requested: 'auto',
  volumes: ['a', 'b'],
  instanceVolumes: ['a', 'b'],
  compression: 'zstd',
  fullEvery: 7,
  ...over,
});

function conflictOf(fn: () => unknown): CairnError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(CairnError);
    expect((err as CairnError).code).toBe('conflict');
    return err as CairnError;
  }
  throw new Error('expected a conflict');
}

describe('chooseBackupKind', () => {
  it('auto: full when the instance has no backup, incremental on the newest completed one otherwise', () => {
    expect(chooseBackupKind(request(), [])).toMatchObject({ kind: 'full', parentId: null, reason: expect.stringContaining('no completed backup') });
    const rows = [row(), row(), row()];
    expect(chooseBackupKind(request(), rows)).toEqual({ kind: 'incremental', parentId: rows[2]!.id, incrementalsBefore: 0, reason: expect.any(String) });
    // The order of the rows does not matter: the newest by completion is the parent.
    expect(chooseBackupKind(request(), [...rows].reverse()).parentId).toBe(rows[2]!.id);
  });

  it('auto: a full backup every FULL_BACKUP_EVERY backups of a chain', () => {
    // full + 5 incrementals: the 7th backup is the 6th incremental.
    const five = chain(5);
    expect(chooseBackupKind(request({ fullEvery: 7 }), five)).toMatchObject({ kind: 'incremental', parentId: five[5]!.id, incrementalsBefore: 5 });
    // full + 6 incrementals: the 8th starts a new chain.
    const six = chain(6);
    expect(chooseBackupKind(request({ fullEvery: 7 }), six)).toMatchObject({ kind: 'full', parentId: null, reason: expect.stringContaining('6 incremental') });
    // FULL_BACKUP_EVERY=1: always full; =2: full, incremental, full...
    expect(chooseBackupKind(request({ fullEvery: 1 }), chain(0)).kind).toBe('full');
    expect(chooseBackupKind(request({ fullEvery: 2 }), chain(0)).kind).toBe('incremental');
    expect(chooseBackupKind(request({ fullEvery: 2 }), chain(1)).kind).toBe('full');
  });

  it('walks the chain through deleted ancestors, and starts a new chain when its start is unknown', () => {
    const rows = chain(3);
    rows[1] = { ...rows[1]!, status: 'deleted', deletedAt: new Date() };
    rows[0] = { ...rows[0]!, status: 'deleted', deletedAt: new Date() };
    expect(chooseBackupKind(request({ fullEvery: 5 }), rows)).toMatchObject({ kind: 'incremental', parentId: rows[3]!.id, incrementalsBefore: 3 });
    expect(chooseBackupKind(request({ fullEvery: 4 }), rows).kind).toBe('full');
    // The full backup's row is gone (or the parent lost its parent): nothing proves the chain short.
    expect(incrementalsSince(rows[3]!, rows.slice(1))).toBe(Number.POSITIVE_INFINITY);
    expect(chooseBackupKind(request({ fullEvery: 100 }), rows.slice(1)).kind).toBe('full');
    const orphan = row({ kind: 'incremental', parentId: null });
    expect(chooseBackupKind(request(), [orphan]).kind).toBe('full');
    // A cycle (corrupt rows) ends the walk too.
    const x = row({ kind: 'incremental', parentId: 'y' });
    const y = { ...row({ kind: 'incremental', parentId: x.id }), id: 'y' };
    expect(incrementalsSince(x, [x, y])).toBe(Number.POSITIVE_INFINITY);
  });

  it('skips backups of other volumes, another codec, archive format 1, and those not completed or deleted', () => {
    const good = row();
    const rows = [
      good,
      row({ volumes: ['a'] }),
      row({ volumes: ['a', 'b', 'c'] }),
      row({ compression: 'gzip' }),
      row({ format: 1 }),
      row({ status: 'failed', completedAt: null }),
      row({ status: 'cancelled' }),
      row({ status: 'deleting', deletedAt: new Date() }),
      row({ status: 'deleted', deletedAt: new Date() }),
      row({ status: 'pending', completedAt: null }),
      row({ status: 'running', completedAt: null }),
    ];
    expect(chooseBackupKind(request(), rows)).toMatchObject({ kind: 'incremental', parentId: good.id });
    expect(chooseBackupKind(request(), rows.slice(1))).toMatchObject({ kind: 'full', parentId: null });
  });

  it("resolves a row's empty volume list to every volume of the instance, and compares sets", () => {
    const all = row({ volumes: [] });
    expect(chooseBackupKind(request({ volumes: ['b', 'a'] }), [all])).toMatchObject({ kind: 'incremental', parentId: all.id });
    expect(chooseBackupKind(request({ volumes: ['a'] }), [all]).kind).toBe('full');
    // A backup of a and b is no parent of one of a, b and c.
    expect(chooseBackupKind(request({ volumes: ['a', 'b', 'c'], instanceVolumes: ['a', 'b', 'c'] }), [row()]).kind).toBe('full');
  });

  it('full: always full, whatever there is to build on', () => {
    expect(chooseBackupKind(request({ requested: 'full' }), [row()])).toMatchObject({ kind: 'full', parentId: null, reason: 'a full backup was requested' });
  });

  it('incremental: on the newest eligible backup even past FULL_BACKUP_EVERY; 409 conflict saying why when there is none', () => {
    const long = chain(10);
    expect(chooseBackupKind(request({ requested: 'incremental', fullEvery: 3 }), long)).toMatchObject({ kind: 'incremental', parentId: long[10]!.id });

    const none = conflictOf(() => chooseBackupKind(request({ requested: 'incremental' }), []));
    expect(none.message).toMatch(/cannot take an incremental backup: no completed backup of volumes a, b with codec zstd in archive format 2/);
    expect(none.message).toMatch(/the instance has no completed backup/);

    const legacy = row({ format: 1 });
    const old = conflictOf(() => chooseBackupKind(request({ requested: 'incremental' }), [legacy]));
    expect(old.message).toContain(`the newest completed backup ${legacy.id} cannot be a parent: it is in archive format 1`);
    const gz = row({ compression: 'gzip' });
    expect(conflictOf(() => chooseBackupKind(request({ requested: 'incremental' }), [gz])).message).toContain('its codec is gzip');
    const sub = row({ volumes: ['a'] });
    expect(conflictOf(() => chooseBackupKind(request({ requested: 'incremental' }), [sub])).message).toContain('it covers volumes a');
  });
});

describe('decideBackupKind over records', () => {
  it("loads the instance's completed backups and the chain of the newest eligible one, ignoring other instances", async () => {
    const records = new MemoryRecords();
    records.seedNode({ id: 'n1', volumeRoots: ['/v'] });
    records.seedTenant({ id: 't1', name: 'acme' });
    const make = async (name: string) =>
      (
        await records.instances.create({
          id: newId(),
          tenantId: 't1',
          name,
          nodeId: 'n1',
          volumes: [{ id: newId(), name: 'a', hostPath: `/v/${name}/a`, excludes: [] }],
        })
      ).id;
    const inst = await make('one');
    const other = await make('two');
    const add = async (instanceId: string, kind: 'full' | 'incremental', parentId: string | null, status: 'completed' | 'deleted' = 'completed') => {
      const id = newId();
      await records.backups.create({
        id,
        instanceId,
        trigger: 'manual',
        kind,
        parentId,
        volumes: ['a'],
        storageKey: `k/${id}`,
        indexKey: `i/${id}`,
        compression: 'zstd',
        requestedBy: 't',
      });
      const at = new Date(t0 + ++seq * 60_000);
      await records.backups.transition(id, ['pending'], status, { format: 2, completedAt: at, ...(status === 'deleted' ? { deletedAt: at } : {}) });
      return id;
    };
    const req = (fullEvery: number): KindRequest => ({ requested: 'auto', volumes: ['a'], instanceVolumes: ['a'], compression: 'zstd', fullEvery });

    expect(await decideBackupKind(records.backups, inst, req(3))).toMatchObject({ kind: 'full' });
    // Another instance's backups are never a parent.
    await add(other, 'full', null);
    expect(await decideBackupKind(records.backups, inst, req(3))).toMatchObject({ kind: 'full' });

    const full = await add(inst, 'full', null, 'deleted');
    const inc1 = await add(inst, 'incremental', full);
    // The deleted full backup is not a candidate but still starts the chain.
    expect(await decideBackupKind(records.backups, inst, req(3))).toMatchObject({ kind: 'incremental', parentId: inc1, incrementalsBefore: 1 });
    const inc2 = await add(inst, 'incremental', inc1);
    expect(await decideBackupKind(records.backups, inst, req(3))).toMatchObject({ kind: 'full' });
    expect(await decideBackupKind(records.backups, inst, req(4))).toMatchObject({ kind: 'incremental', parentId: inc2, incrementalsBefore: 2 });
    expect(await decideBackupKind(records.backups, inst, { ...req(3), requested: 'incremental' })).toMatchObject({ kind: 'incremental', parentId: inc2 });
  });
});
