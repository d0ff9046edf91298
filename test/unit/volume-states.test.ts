import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MemoryRecords, volumeStateOf, volumeStateProblem } from '@cairn/core';
import { checkVolumeState, volumeStateReports } from '@cairn/worker/node/volume-states.ts';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-unit-volstate-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('volume states seen by the node', () => {
  it('tells a directory from a missing path and from a file', async () => {
    fs.mkdirSync(path.join(dir, 'data'));
    fs.writeFileSync(path.join(dir, 'file'), 'x');
    const at = new Date('2026-12-05T08:00:00Z');
    expect(await checkVolumeState(path.join(dir, 'data'), at)).toEqual({ state: 'exists', checkedAt: '2026-12-05T08:00:00.000Z' });
    expect((await checkVolumeState(path.join(dir, 'nope'), at)).state).toBe('missing');
    expect((await checkVolumeState(path.join(dir, 'file', 'below'), at)).state).toBe('missing');
    expect((await checkVolumeState(path.join(dir, 'file'), at)).state).toBe('not-a-directory');
  });

  it("reports every volume registered on the node by host path, and only this node's", async () => {
    const records = new MemoryRecords();
    records.seedNode({ id: 'n1', volumeRoots: [dir] });
    records.seedNode({ id: 'n2', volumeRoots: [dir] });
    const tenant = records.seedTenant({ id: 't1', name: 't' });
    const volume = (name: string, hostPath: string) => ({ id: `v-${name}`, name, hostPath, excludes: [] });
    await records.instances.create({
      id: 'i1',
      tenantId: tenant.id,
      name: 'a',
      nodeId: 'n1',
      volumes: [volume('data', path.join(dir, 'data')), volume('gone', path.join(dir, 'gone'))],
    });
    await records.instances.create({ id: 'i2', tenantId: tenant.id, name: 'b', nodeId: 'n2', volumes: [volume('other', path.join(dir, 'other'))] });
    const reports = await volumeStateReports({ records, nodeId: 'n1' });
    expect(Object.keys(reports).sort()).toEqual([path.join(dir, 'data'), path.join(dir, 'gone')]);
    expect(reports[path.join(dir, 'gone')]!.state).toBe('missing');

    // What the gateway makes of the stored report.
    const gone = volumeStateOf(reports, path.join(dir, 'gone'))!;
    expect(volumeStateProblem('n1', path.join(dir, 'gone'), gone)).toMatch(/^node n1 reports that .*\/gone does not exist \(checked /);
    expect(volumeStateProblem('n1', path.join(dir, 'data'), volumeStateOf(reports, path.join(dir, 'data'))!)).toBeNull();
    expect(volumeStateOf(reports, '/not/reported')).toBeNull();
    expect(volumeStateOf({ '/x': { state: 'weird', checkedAt: 'now' } }, '/x')).toBeNull();
    expect(volumeStateOf(null, '/x')).toBeNull();
  });
});
