import { describe, expect, it } from 'vitest';
import { BackupPath, CreateInstanceBody, HostPath, ListJobsQuery, RestoreBody, UpdateInstanceBody } from '@cairn/core/api/index.ts';
import { issuesToDetails } from '@cairn/gateway/http/validation.ts';

/** The request schemas shared with the CLI: pure checks, no I/O. */
describe('HostPath', () => {
  it.each(['/srv/a', '/srv/a/b c', '/x'])('accepts %s', (p) => {
    expect(HostPath.safeParse(p).success).toBe(true);
  });
  it.each([
    ['', 'absolute path below /'],
    ['/', 'absolute path below /'],
    ['srv/a', 'must be an absolute path'],
    ['/srv/../etc', "'..'"],
    ['/srv/a/..', "'..'"],
    ['/srv/./a', 'normalised'],
    ['/srv//a', 'normalised'],
    ['/srv/a/', 'normalised'],
    ['/srv/a\0b', 'NUL'],
  ])('rejects %j', (p, message) => {
    const r = HostPath.safeParse(p);
    expect(r.success).toBe(false);
    expect(r.error!.issues[0]!.message).toContain(message);
  });
});

describe('BackupPath', () => {
  it.each(['data', 'data/a.txt', 'data/dir/sub', 'data/ünïcode file'])('accepts %s', (p) => {
    expect(BackupPath.safeParse(p).success).toBe(true);
  });
  it.each(['/data/a', 'data/../x', './data', 'data/./x', 'data/', 'data//x', '', '.hidden/x'])('rejects %j', (p) => {
    expect(BackupPath.safeParse(p).success).toBe(false);
  });
});

describe('request bodies', () => {
  it('names every bad field, one detail per unknown key', () => {
    const r = CreateInstanceBody.safeParse({ name: '', nodeId: 'n', volumes: [{ name: 'a', hostPath: '/a', x: 1, y: 2 }], z: true });
    expect(r.success).toBe(false);
    expect(issuesToDetails(r.error!.issues).map((d) => d.path)).toEqual(['name', 'volumes.0.x', 'volumes.0.y', 'z']);
  });

  it('refuses duplicate and nested volumes', () => {
    const r = CreateInstanceBody.safeParse({
      name: 'i',
      nodeId: 'n',
      volumes: [
        { name: 'a', hostPath: '/v/a' },
        { name: 'a', hostPath: '/v/b' },
        { name: 'c', hostPath: '/v/a/c' },
        { name: 'd', hostPath: '/v/ab' },
      ],
    });
    expect(r.success).toBe(false);
    expect(issuesToDetails(r.error!.issues)).toEqual([
      { path: 'volumes.1.name', message: 'duplicate volume name a' },
      { path: 'volumes.2.hostPath', message: 'overlaps volume a (/v/a)' },
    ]);
  });

  it('needs at least one change in a PATCH', () => {
    expect(UpdateInstanceBody.safeParse({}).success).toBe(false);
    expect(UpdateInstanceBody.safeParse({ name: 'x' }).success).toBe(true);
  });

  it('checks restore paths, volumes and mode', () => {
    expect(RestoreBody.safeParse({ paths: ['data/a', 'data/a'] }).success).toBe(false);
    expect(RestoreBody.safeParse({ mode: 'merge', volumes: ['data'], paths: ['data/x'] }).success).toBe(true);
    expect(RestoreBody.safeParse({ extra: 1 }).success).toBe(false);
  });

  it('parses comma-separated filters and coerces the limit', () => {
    expect(ListJobsQuery.parse({ status: 'queued,running,queued', limit: '5' })).toEqual({ status: ['queued', 'running'], limit: 5 });
    expect(ListJobsQuery.safeParse({ status: 'queued,nope' }).success).toBe(false);
    expect(ListJobsQuery.parse({})).toEqual({ limit: 50 });
  });
});
