/**
 * Verify / scrub end to end (issue 14) through the REST API, with the real Postgres, Redis, S3
 * server, control worker and node worker: each level catches what it promises — quick a deleted
 * archive object, sample at 100% a corrupted frame of a file no restore has read, full a corrupted
 * byte in the end-of-archive frame no file owns — the outcome is recorded on the backup and in the
 * metrics, and a backup that failed verification is never an incremental parent.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeIndex, type ArchiveIndex } from '@cairn/core/archive/index.ts';
import { startCairn, type Cairn } from '../support/cairn-harness.ts';

const MiB = 1024 * 1024;
const exec = promisify(execFile);

describe('verify / scrub end to end', () => {
  let cairn: Cairn;
  let count = 0;

  const read = async (key: string): Promise<Buffer> => {
    const parts: Buffer[] = [];
    for await (const c of await cairn.runtime.store.get(key)) parts.push(c as Buffer);
    return Buffer.concat(parts);
  };

  /** A new instance with a few files, some over a frame long, and its first (full) backup. */
  const instanceWithBackup = async (): Promise<{ instanceId: string; backup: any; data: string }> => {
    const name = `v${++count}`;
    const data = path.join(cairn.volumeRoot, name, 'data');
    fs.mkdirSync(path.join(data, 'dir'), { recursive: true });
    fs.writeFileSync(path.join(data, 'big1.bin'), randomBytes(Math.round(1.5 * MiB)));
    fs.writeFileSync(path.join(data, 'big2.bin'), randomBytes(Math.round(2.5 * MiB)));
    for (let i = 0; i < 20; i++) fs.writeFileSync(path.join(data, 'dir', `f${i}.txt`), `small file ${i}\n`.repeat(50 + i));
    const created = await cairn.api('POST', '/v1/instances', { name, nodeId: cairn.nodeId, tenant: cairn.tenant, volumes: [{ name: 'data', hostPath: data }] });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    return { instanceId: created.body.id, backup: await backup(created.body.id, { kind: 'full' }), data };
  };

  const backup = async (instanceId: string, body: object = {}): Promise<any> => {
    const res = await cairn.api('POST', `/v1/instances/${instanceId}/backups`, body);
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    const job = await cairn.waitForJob(res.body.job.id, undefined, 120_000);
    expect(job.status, JSON.stringify(job)).toBe('succeeded');
    return (await cairn.api('GET', `/v1/backups/${res.body.backup.id}`)).body;
  };

  /** Runs a verify of `backupId` to its end; returns the job and the backup after it. */
  const verify = async (backupId: string, body: object): Promise<{ job: any; backup: any }> => {
    const res = await cairn.api('POST', `/v1/backups/${backupId}/verify`, body);
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    expect(res.body.job.type).toBe('verify');
    const job = await cairn.waitForJob(res.body.job.id, undefined, 120_000);
    return { job, backup: (await cairn.api('GET', `/v1/backups/${backupId}`)).body };
  };

  const indexOf = async (b: any): Promise<ArchiveIndex> => decodeIndex(await read(b.indexKey));

  /** Flips one byte in the middle of block `block` of the backup's own archive object. */
  const corruptBlock = async (b: any, index: ArchiveIndex, block: number): Promise<void> => {
    const blk = index.blocks[block]!;
    expect(blk.object).toBeUndefined();
    const bytes = await read(b.storageKey);
    const at = blk.compressedOffset + Math.floor(blk.compressedLength / 2);
    bytes[at] = bytes[at]! ^ 0xff;
    await cairn.runtime.store.put(b.storageKey, bytes);
  };

  const metric = async (name: string): Promise<number> => {
    const text = await (await fetch(`${cairn.url}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith(`${name} `));
    return line ? Number(line.split(' ')[1]) : Number.NaN;
  };

  /** The metric once it reaches `least` (a scrape reuses the fleet snapshot of the last second). */
  const metricAtLeast = async (name: string, least: number): Promise<number> => {
    const deadline = Date.now() + 5000;
    let value = await metric(name);
    while (!(value >= least) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 250));
      value = await metric(name);
    }
    return value;
  };

  beforeAll(async () => {
    cairn = await startCairn();
  });

  afterAll(async () => {
    await cairn?.close();
  });

  it('quick, sample and full pass on an intact backup and record the outcome on it', async () => {
    const { backup: b } = await instanceWithBackup();
    expect(b.verifiedAt).toBeNull();
    expect(b.verifyStatus).toBeNull();

    const quick = await verify(b.id, { level: 'quick' });
    expect(quick.job.status, JSON.stringify(quick.job)).toBe('succeeded');
    expect(quick.backup).toMatchObject({ verifyStatus: 'ok', verifyLevel: 'quick', verifyError: null });
    expect(Date.parse(quick.backup.verifiedAt)).toBeGreaterThan(Date.parse(b.completedAt));

    const sample = await verify(b.id, { level: 'sample', samplePercent: 100 });
    expect(sample.job.status, JSON.stringify(sample.job)).toBe('succeeded');
    expect(sample.job.result).toMatchObject({ level: 'sample', files: 22, filesChecked: 22 });

    const full = await verify(b.id, { level: 'full' });
    expect(full.job.status, JSON.stringify(full.job)).toBe('succeeded');
    const index = await indexOf(b);
    expect(full.job.result).toMatchObject({ level: 'full', filesChecked: 22, blocksChecked: index.blocks.length, sha256: b.sha256 });
    expect(full.backup).toMatchObject({ verifyStatus: 'ok', verifyLevel: 'full' });
  });

  it('answers 400 naming the field, 404 across tenants and 409 for a backup that is not completed', async () => {
    const { instanceId, backup: b } = await instanceWithBackup();
    const bad = await cairn.api('POST', `/v1/backups/${b.id}/verify`, { level: 'deep' });
    expect(bad.status).toBe(400);
    expect(JSON.stringify(bad.body)).toContain('level');
    const pct = await cairn.api('POST', `/v1/backups/${b.id}/verify`, { level: 'sample', samplePercent: 0 });
    expect(pct.status).toBe(400);
    expect(JSON.stringify(pct.body)).toContain('samplePercent');
    const extra = await cairn.api('POST', `/v1/backups/${b.id}/verify`, { level: 'quick', deep: true });
    expect(extra.status).toBe(400);

    const other = await cairn.api('POST', '/v1/tokens', { name: `verify-other-${count}`, role: 'member', tenant: `${cairn.tenant}-other` });
    expect(other.status, JSON.stringify(other.body)).toBe(201);
    const foreign = await cairn.api('POST', `/v1/backups/${b.id}/verify`, { level: 'quick' }, other.body.token);
    expect(foreign.status).toBe(404);

    const second = await backup(instanceId);
    const del = await cairn.api('DELETE', `/v1/backups/${second.id}`);
    expect(del.status).toBe(202);
    const gone = await cairn.api('POST', `/v1/backups/${second.id}/verify`, { level: 'quick' });
    expect(gone.status).toBe(409);
  });

  it('cairn verify follows the job: exit 0 when the backup verifies, 1 with what was wrong, 2 for bad flags', async () => {
    const cli = async (...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> => {
      try {
        const r = await exec(process.execPath, ['--import', 'tsx', 'services/cli/src/main.ts', ...args], {
          env: { ...process.env, CAIRN_URL: cairn.url, CAIRN_TOKEN: cairn.adminToken },
        });
        return { code: 0, stdout: r.stdout, stderr: r.stderr };
      } catch (err) {
        const e = err as { code: number; stdout: string; stderr: string };
        return { code: e.code, stdout: e.stdout, stderr: e.stderr };
      }
    };
    const { backup: b } = await instanceWithBackup();
    const ok = await cli('verify', b.id, '--level', 'sample', '--sample-percent', '50');
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toContain(`backup ${b.id} verified (sample)`);
    expect((await cairn.api('GET', `/v1/backups/${b.id}`)).body).toMatchObject({ verifyStatus: 'ok', verifyLevel: 'sample' });
    expect((await cli('verify', b.id, '--level', 'deep')).code).toBe(2);
    expect((await cli('verify', b.id, '--level', 'quick', '--sample-percent', '5')).code).toBe(2);
    await cairn.runtime.store.delete(b.storageKey);
    const bad = await cli('verify', b.id, '--level', 'quick');
    expect(bad.code).toBe(1);
    expect(bad.stdout).toContain('failed');
    expect(bad.stdout).toContain(b.storageKey);
  });

  it('quick catches a deleted archive object', async () => {
    const { backup: b } = await instanceWithBackup();
    await cairn.runtime.store.delete(b.storageKey);
    const { job, backup: after } = await verify(b.id, { level: 'quick' });
    expect(job.status).toBe('failed');
    expect(job.errorCode).toBe('archive-missing');
    expect(job.error).toContain(b.storageKey);
    expect(after).toMatchObject({ verifyStatus: 'failed', verifyLevel: 'quick' });
    expect(after.verifyError).toContain(b.storageKey);
  });

  it('sample at 100% catches a corrupted frame of a file no restore has read; the backup is never a parent again', async () => {
    const { instanceId, backup: b } = await instanceWithBackup();
    const index = await indexOf(b);
    const big2 = index.entries.find((e) => e.path === 'data/big2.bin')!;
    // A content frame of big2.bin (format 2: a header frame, then one frame per MiB of content).
    const block = index.blocks.findIndex((x) => x.uncompressedOffset > big2.dataOffset + MiB);
    expect(block).toBeGreaterThan(0);
    const failuresBefore = await metric('cairn_backup_verify_failures_total');
    await corruptBlock(b, index, block);

    // The object is still there with its size: quick cannot tell.
    expect((await verify(b.id, { level: 'quick' })).job.status).toBe('succeeded');
    const { job, backup: after } = await verify(b.id, { level: 'sample', samplePercent: 100 });
    expect(job.status, JSON.stringify(job)).toBe('failed');
    expect(['archive-corrupt', 'checksum-mismatch']).toContain(job.errorCode);
    expect(job.error).toContain(`block ${block} `);
    expect(after).toMatchObject({ verifyStatus: 'failed', verifyLevel: 'sample' });
    expect(after.verifyError).toContain(`block ${block} `);

    expect(await metricAtLeast('cairn_backup_verify_failures_total', failuresBefore + 1)).toBeGreaterThanOrEqual(failuresBefore + 1);
    expect(await metricAtLeast('cairn_backups_verify_failed', 1)).toBeGreaterThanOrEqual(1);

    // Never an incremental parent: `incremental` is refused, `auto` makes a full backup.
    const inc = await cairn.api('POST', `/v1/instances/${instanceId}/backups`, { kind: 'incremental' });
    expect(inc.status, JSON.stringify(inc.body)).toBe(409);
    expect(inc.body.error.message).toContain('failed verification');
    const auto = await backup(instanceId, { kind: 'auto' });
    expect(auto).toMatchObject({ kind: 'full', parentId: null });
  });

  it('an incremental never points at frames in the object of a backup that failed verification, even through a healthy parent', async () => {
    const { instanceId, backup: full } = await instanceWithBackup();
    const inc = await backup(instanceId);
    expect(inc).toMatchObject({ kind: 'incremental', parentId: full.id });
    const fullIndex = await indexOf(full);
    const big2 = fullIndex.entries.find((e) => e.path === 'data/big2.bin')!;
    await corruptBlock(
      full,
      fullIndex,
      fullIndex.blocks.findIndex((x) => x.uncompressedOffset > big2.dataOffset + MiB),
    );
    expect((await verify(full.id, { level: 'sample', samplePercent: 100 })).backup.verifyStatus).toBe('failed');
    // The unchanged incremental's frames are the full backup's; the next one builds on it but reads the files again.
    expect((await indexOf(inc)).blocks.some((b) => b.object === full.id)).toBe(true);
    const next = await backup(instanceId);
    expect(next).toMatchObject({ kind: 'incremental', parentId: inc.id });
    expect((await indexOf(next)).blocks.some((b) => b.object === full.id)).toBe(false);
    const checked = await verify(next.id, { level: 'full' });
    expect(checked.job.status, JSON.stringify(checked.job)).toBe('succeeded');
  });

  it('full catches a corrupted byte in the end-of-archive frame, which no file owns and sample never reads', async () => {
    const { backup: b } = await instanceWithBackup();
    const index = await indexOf(b);
    const last = index.blocks.length - 1;
    expect(index.entries.every((e) => e.headerOffset < index.blocks[last]!.uncompressedOffset)).toBe(true);
    await corruptBlock(b, index, last);

    expect((await verify(b.id, { level: 'sample', samplePercent: 100 })).job.status).toBe('succeeded');
    const { job, backup: after } = await verify(b.id, { level: 'full' });
    expect(job.status, JSON.stringify(job)).toBe('failed');
    expect(['archive-corrupt', 'checksum-mismatch']).toContain(job.errorCode);
    expect(job.error).toContain(`block ${last} `);
    expect(after).toMatchObject({ verifyStatus: 'failed', verifyLevel: 'full' });
  });
});

describe('the fleet-wide verify run (VERIFY_EVERY)', () => {
  let cairn: Cairn;

  beforeAll(async () => {
    // A budget of one byte: each run checks one backup (quick), whichever test file it belongs to.
    cairn = await startCairn({ nodeWorker: 'none', env: { VERIFY_EVERY: '1h', VERIFY_LEVEL: 'quick', VERIFY_BYTES_BUDGET: '1' } });
  });

  afterAll(async () => {
    await cairn?.close();
  });

  it('the control worker schedules it, and a run is recorded as a verify job with its summary', async () => {
    const scheduler = await cairn.runtime.queues.queue('control').getJobScheduler('cairn-verify');
    expect(scheduler).toMatchObject({ every: 3_600_000 });
    const deadline = Date.now() + 30_000;
    let run: any;
    while (!run && Date.now() < deadline) {
      run = await cairn.prisma.job.findFirst({
        // This file's policy run (bytesBudget 1): the run's database also holds other files' verify jobs.
        where: {
          type: 'verify',
          backupId: null,
          status: 'succeeded',
          AND: [{ params: { path: ['policy'], equals: true } }, { params: { path: ['bytesBudget'], equals: 1 } }],
        },
        orderBy: { id: 'desc' },
      });
      if (!run) await new Promise((r) => setTimeout(r, 200));
    }
    expect(run).toBeTruthy();
    expect(run.params).toMatchObject({ level: 'quick', bytesBudget: 1 });
    expect(run.result).toMatchObject({ level: 'quick', bytesBudget: 1 });
    // The run stops once its budget (1 byte) is spent. The run's database also holds other test
    // files' backups, whose checks here may count no bytes (objects under another prefix): so what
    // holds is that one check at most counted anything against the budget (the last one).
    const checks = await cairn.prisma.job.findMany({ where: { parentJobId: run.id, status: { in: ['succeeded', 'failed'] } } });
    expect(checks).toHaveLength(run.result.checked);
    expect(run.result.checked).toBeGreaterThanOrEqual(1);
    const counted = await Promise.all(
      checks.map(async (check) =>
        check.status === 'succeeded'
          ? Number((check.result as { bytesRead: number }).bytesRead)
          : Number((await cairn.prisma.backup.findUniqueOrThrow({ where: { id: check.backupId! } })).sizeBytes ?? 0),
      ),
    );
    expect(counted.filter((bytes) => bytes > 0).length).toBeLessThanOrEqual(1);
  });
});

describe('verify of an encrypted backup (CAIRN_MASTER_KEYS)', () => {
  let cairn: Cairn;

  beforeAll(async () => {
    cairn = await startCairn({ env: { CAIRN_MASTER_KEYS: `vk:${randomBytes(32).toString('base64')}` } });
  });

  afterAll(async () => {
    await cairn?.close();
  });

  it('opens the index and frames with the data key; an altered stored byte fails sample and full, naming the frame', async () => {
    const data = path.join(cairn.volumeRoot, 'enc', 'data');
    fs.mkdirSync(data, { recursive: true });
    fs.writeFileSync(path.join(data, 'big.bin'), randomBytes(Math.round(2.5 * MiB)));
    fs.writeFileSync(path.join(data, 'small.txt'), 'small\n'.repeat(100));
    const created = await cairn.api('POST', '/v1/instances', {
      name: 'enc',
      nodeId: cairn.nodeId,
      tenant: cairn.tenant,
      volumes: [{ name: 'data', hostPath: data }],
    });
    expect(created.status).toBe(201);
    const started = await cairn.api('POST', `/v1/instances/${created.body.id}/backups`, { kind: 'full' });
    expect(started.status).toBe(202);
    expect((await cairn.waitForJob(started.body.job.id, undefined, 120_000)).status).toBe('succeeded');
    const b = (await cairn.api('GET', `/v1/backups/${started.body.backup.id}`)).body;
    expect(b.encryption.mode).toBe('aes-256-gcm');

    const run = async (body: object) => {
      const res = await cairn.api('POST', `/v1/backups/${b.id}/verify`, body);
      expect(res.status, JSON.stringify(res.body)).toBe(202);
      return cairn.waitForJob(res.body.job.id, undefined, 120_000);
    };
    for (const level of ['quick', 'sample', 'full']) {
      const job = await run(level === 'sample' ? { level, samplePercent: 100 } : { level });
      expect(job.status, JSON.stringify(job)).toBe('succeeded');
    }
    expect((await run({ level: 'full' })).result).toMatchObject({ filesChecked: 2, sha256: b.sha256 });

    // Flip a byte in the middle of the stored archive (inside a sealed content frame of big.bin).
    const parts: Buffer[] = [];
    for await (const c of await cairn.runtime.store.get(b.storageKey)) parts.push(c as Buffer);
    const bytes = Buffer.concat(parts);
    bytes[Math.floor(bytes.length / 2)]! ^= 0x01;
    await cairn.runtime.store.put(b.storageKey, bytes);
    const sample = await run({ level: 'sample', samplePercent: 100 });
    expect(sample.status).toBe('failed');
    expect(sample.errorCode).toBe('checksum-mismatch');
    expect(sample.error).toContain('fails authentication');
    const full = await run({ level: 'full' });
    expect(full.status).toBe('failed');
    expect(full.error).toMatch(/^block \d+ \(stored bytes/);
    expect((await cairn.api('GET', `/v1/backups/${b.id}`)).body).toMatchObject({ verifyStatus: 'failed', verifyLevel: 'full' });
  });
});
