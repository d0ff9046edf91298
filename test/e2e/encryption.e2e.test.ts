/**
 * Encryption at rest (issue 14) through the API with the real S3 server: with CAIRN_MASTER_KEYS
 * set, the stored archive holds no plaintext of a known file and is not a zstd stream; restore,
 * path restore, browse and download (a plain .tar.zst) work, incrementals included; a flipped
 * byte or two swapped frames fail the restore naming the frame; a backup under a key the ring no
 * longer holds fails early, naming the key.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { buffer } from 'node:stream/consumers';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCairn, type Cairn } from '../support/cairn-harness.ts';
import { snapshotTree } from '../support/tree.ts';

const KEY_A = `keyA:${randomBytes(32).toString('base64')}`;
const KEY_B = `keyB:${randomBytes(32).toString('base64')}`;
const MARKER = 'CAIRN-PLAINTEXT-MARKER-'.repeat(40);

describe('encryption at rest', () => {
  let cairn: Cairn;
  let data: string;
  let instanceId: string;
  let full: any;
  let inc: any;

  const backup = async (): Promise<any> => {
    const res = await cairn.api('POST', `/v1/instances/${instanceId}/backups`, {});
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    const job = await cairn.waitForJob(res.body.job.id, undefined, 120_000);
    expect(job.status, JSON.stringify(job)).toBe('succeeded');
    return (await cairn.api('GET', `/v1/backups/${res.body.backup.id}`)).body;
  };

  const restoreInto = async (backupId: string, body: object = {}): Promise<{ job: any; dir: string }> => {
    const dir = path.join(cairn.volumeRoot, `r-${randomBytes(4).toString('hex')}`, 'data');
    fs.mkdirSync(dir, { recursive: true });
    const created = await cairn.api('POST', '/v1/instances', {
      name: path.basename(path.dirname(dir)),
      nodeId: cairn.nodeId,
      tenant: cairn.tenant,
      volumes: [{ name: 'data', hostPath: dir }],
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const res = await cairn.api('POST', `/v1/backups/${backupId}/restore`, { targetInstanceId: created.body.id, ...body });
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    return { job: await cairn.waitForJob(res.body.job.id, undefined, 120_000), dir };
  };

  beforeAll(async () => {
    cairn = await startCairn({ env: { CAIRN_MASTER_KEYS: KEY_A } });
    data = path.join(cairn.volumeRoot, 'app', 'data');
    fs.mkdirSync(path.join(data, 'docs'), { recursive: true });
    fs.writeFileSync(path.join(data, 'docs', 'secret.txt'), MARKER);
    for (let i = 0; i < 30; i++) fs.writeFileSync(path.join(data, `f${i}.txt`), `${MARKER}${i}\n`.repeat(50));
    fs.writeFileSync(path.join(data, 'big.bin'), randomBytes(3 * 1024 * 1024));
    const res = await cairn.api('POST', '/v1/instances', {
      name: 'enc',
      nodeId: cairn.nodeId,
      tenant: cairn.tenant,
      volumes: [{ name: 'data', hostPath: data }],
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    instanceId = res.body.id;
  });
  afterAll(async () => {
    await cairn?.close();
  });

  it('stores no plaintext and no zstd stream; records the key id, never a key', async () => {
    full = await backup();
    expect(full.encryption).toEqual({ mode: 'aes-256-gcm', keyId: 'keyA' });
    expect(JSON.stringify(full)).not.toContain('wrappedKey');
    const row = await cairn.prisma.backup.findUnique({ where: { id: full.id } });
    const stored = await buffer(await cairn.runtime.store.get(row!.storageKey));
    expect(stored.includes(Buffer.from('CAIRN-PLAINTEXT-MARKER'))).toBe(false);
    expect(() => execFileSync('zstd', ['-t', '-q'], { input: stored, stdio: ['pipe', 'ignore', 'ignore'] })).toThrow();
    const index = await buffer(await cairn.runtime.store.get(row!.indexKey));
    expect(index[0] === 0x1f && index[1] === 0x8b).toBe(false); // not a readable gzip index
    expect(index.includes(Buffer.from('secret.txt'))).toBe(false);
  });

  it('restores, browses and downloads; an incremental too', async () => {
    const whole = await restoreInto(full.id);
    expect(whole.job.status, JSON.stringify(whole.job)).toBe('succeeded');
    expect(snapshotTree(whole.dir)).toEqual(snapshotTree(data));
    fs.appendFileSync(path.join(data, 'f3.txt'), 'changed\n');
    inc = await backup();
    expect(inc.kind).toBe('incremental');
    const restored = await restoreInto(inc.id);
    expect(restored.job.status, JSON.stringify(restored.job)).toBe('succeeded');
    expect(snapshotTree(restored.dir)).toEqual(snapshotTree(data));
    const one = await restoreInto(inc.id, { paths: ['data/docs/secret.txt'] });
    expect(one.job.status, JSON.stringify(one.job)).toBe('succeeded');
    expect(fs.readFileSync(path.join(one.dir, 'docs', 'secret.txt'), 'utf8')).toBe(MARKER);
    const files = await cairn.api('GET', `/v1/backups/${inc.id}/files?prefix=data/docs`);
    expect(files.status).toBe(200);
    expect(files.body.items.map((e: { path: string }) => e.path)).toContain('data/docs/secret.txt');
    const res = await fetch(`${cairn.url}/v1/backups/${inc.id}/download`, { headers: { authorization: `Bearer ${cairn.adminToken}` } });
    expect(res.status).toBe(200);
    const file = path.join(cairn.volumeRoot, 'inc.tar.zst');
    await pipeline(Readable.fromWeb(res.body as never), fs.createWriteStream(file));
    const out = path.join(cairn.volumeRoot, 'dl');
    fs.mkdirSync(out);
    execFileSync('tar', ['--zstd', '-xpf', file, '-C', out]);
    expect(snapshotTree(path.join(out, 'data'))).toEqual(snapshotTree(data));
    const one2 = await fetch(`${cairn.url}/v1/backups/${inc.id}/download?path=data/docs/secret.txt`, {
      headers: { authorization: `Bearer ${cairn.adminToken}` },
    });
    expect(one2.status).toBe(200);
    expect(Buffer.from(await one2.arrayBuffer()).includes(Buffer.from(MARKER))).toBe(true);
  });

  it('a flipped byte, or two frames swapped, fails the restore naming the frame', async () => {
    const row = await cairn.prisma.backup.findUnique({ where: { id: full.id } });
    const original = await buffer(await cairn.runtime.store.get(row!.storageKey));
    try {
      const flipped = Buffer.from(original);
      flipped[Math.floor(flipped.length / 2)]! ^= 0x01;
      await cairn.runtime.store.put(row!.storageKey, flipped);
      const r1 = await restoreInto(full.id);
      expect(r1.job.status).toBe('failed');
      expect(r1.job.error).toMatch(/frame at offset \d+ of backup .* fails authentication/);
      // Two frames of the same length swapped (the directory frames of a format 2 archive).
      const { decodeIndex } = await import('@cairn/core/archive/index.ts');
      const { openIndexObject, keyringOf } = await import('@cairn/core');
      const ix = decodeIndex(await buffer(openIndexObject(keyringOf({ CAIRN_MASTER_KEYS: KEY_A }), row!, await cairn.runtime.store.get(row!.indexKey))));
      const own = ix.blocks.filter((b) => b.object === undefined);
      const pair = own.flatMap((a, i) =>
        own
          .slice(i + 1)
          .filter((b) => b.compressedLength === a.compressedLength)
          .map((b) => [a, b] as const),
      )[0];
      expect(pair).toBeDefined();
      const [a, b] = pair!;
      const swapped = Buffer.from(original);
      original.copy(swapped, a.compressedOffset, b.compressedOffset, b.compressedOffset + b.compressedLength);
      original.copy(swapped, b.compressedOffset, a.compressedOffset, a.compressedOffset + a.compressedLength);
      await cairn.runtime.store.put(row!.storageKey, swapped);
      const r2 = await restoreInto(full.id);
      expect(r2.job.status).toBe('failed');
      expect(r2.job.error).toMatch(/fails authentication/);
    } finally {
      await cairn.runtime.store.put(row!.storageKey, original);
    }
  });

  it('rotation: back up under A, make B active, re-wrap, remove A: every backup restores; a missing key fails early by id', async () => {
    // B active, A still listed (the processes read the ring at each use).
    cairn.config.CAIRN_MASTER_KEYS = `${KEY_B},${KEY_A}`;
    const underB = await backup();
    expect(underB.encryption).toEqual({ mode: 'aes-256-gcm', keyId: 'keyB' });
    // The re-wrap covers every backup of the fleet: the run's database holds other test files' too.
    const ours = (r: { failed: { backupId: string }[] }) => r.failed.filter((f) => [full.id, inc.id, underB.id].includes(f.backupId));
    const dry = await cairn.api('POST', '/v1/admin/keys/rewrap', { dryRun: true });
    expect(dry.status, JSON.stringify(dry.body)).toBe(200);
    expect(dry.body).toMatchObject({ activeKeyId: 'keyB', dryRun: true });
    expect(ours(dry.body)).toEqual([]);
    expect(dry.body.rewrapped).toBeGreaterThanOrEqual(2);
    expect((await cairn.api('GET', `/v1/backups/${full.id}`)).body.encryption.keyId).toBe('keyA'); // a dry run changes nothing
    // Before the re-wrap, a ring without A cannot read A's backups: the restore fails early, naming the key.
    cairn.config.CAIRN_MASTER_KEYS = KEY_B;
    const early = await restoreInto(inc.id);
    expect(early.job.status).toBe('failed');
    expect(early.job.error).toMatch(/master key keyA, which is not in CAIRN_MASTER_KEYS/);
    cairn.config.CAIRN_MASTER_KEYS = `${KEY_B},${KEY_A}`;
    const done = await cairn.api('POST', '/v1/admin/keys/rewrap', {});
    expect(done.status, JSON.stringify(done.body)).toBe(200);
    expect(ours(done.body)).toEqual([]);
    expect((await cairn.api('GET', `/v1/backups/${full.id}`)).body.encryption.keyId).toBe('keyB');
    // A removed: every backup still restores.
    cairn.config.CAIRN_MASTER_KEYS = KEY_B;
    for (const b of [full, inc, underB]) {
      const r = await restoreInto(b.id);
      expect(r.job.status, JSON.stringify(r.job)).toBe('succeeded');
    }
    const restored = await restoreInto(underB.id);
    expect(snapshotTree(restored.dir)).toEqual(snapshotTree(data));
    // A member may not rotate.
    const member = await cairn.api('POST', '/v1/tokens', { name: 'm', role: 'member', tenant: cairn.tenant });
    expect((await cairn.api('POST', '/v1/admin/keys/rewrap', {}, member.body.token)).status).toBe(403);
  }, 180_000);
});
