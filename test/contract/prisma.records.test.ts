/** The Records contract against PrismaRecords, on the run's Postgres (vitest global setup). */
import { describe, expect, it, onTestFinished } from 'vitest';
import { loadConfig, newId, PrismaRecords } from '@cairn/core';
import { recordsContract } from './records.contract.ts';

recordsContract(
  'PrismaRecords',
  async () => {
    const records = PrismaRecords.open(loadConfig(process.env).DATABASE_URL);
    await records.ping();
    return { records, close: () => records.close() };
  },
  {},
);

describe('PrismaRecords over its pg pool', () => {
  it('reads rows in plain SQL as Prisma does, whatever the time zone, and closes twice without an error', async () => {
    // Away from UTC for this test (Node applies a changed TZ at once): timestamps are UTC in the database.
    const tz = process.env.TZ;
    process.env.TZ = 'Asia/Tokyo';
    onTestFinished(() => {
      if (tz === undefined) delete process.env.TZ;
      else process.env.TZ = tz;
    });
    expect(new Date(2026, 0, 1).getTimezoneOffset()).toBe(-540);
    const records = PrismaRecords.open(loadConfig(process.env).DATABASE_URL, { max: 2 });
    const tenant = await records.tenants.ensure(`tz-${newId().toLowerCase()}`, newId());
    const token = await records.tokens.create({ id: newId(), tenantId: tenant.id, role: 'member', name: 'tz', tokenHash: `hash-${newId()}` });
    const at = new Date('2026-07-01T23:30:00.123Z');
    await records.tokens.touch(token.id, at, new Date(at.getTime() + 1));
    const { id } = await records.instances.create({ id: newId(), tenantId: tenant.id, name: 'tz', nodeId: await aNode(records), volumes: [] });
    const job = await records.jobs.create({ id: newId(), type: 'backup', instanceId: id, requestedBy: 'test', startedAt: at });
    // Through Prisma (findUnique by id inside a transaction) and through plain SQL (outside): the same row.
    const viaPrisma = await records.transaction((tx) => tx.jobs.get(job.id));
    expect(await records.jobs.get(job.id)).toEqual(viaPrisma);
    expect((await records.jobs.get(job.id))!.startedAt).toEqual(at);
    expect(await records.jobs.find({ createdBefore: new Date(job.createdAt.getTime() + 1), instanceId: id })).toEqual([viaPrisma]);
    expect(await records.jobs.find({ createdBefore: job.createdAt, instanceId: id })).toEqual([]);
    await records.close();
    await records.close();
  });
});

async function aNode(records: PrismaRecords): Promise<string> {
  const id = `tz-${newId().toLowerCase()}`;
  await records.nodes.heartbeat(id, { volumeRoots: ['/srv'], version: 'test', lastHeartbeatAt: new Date(), capacity: {} });
  return id;
}
