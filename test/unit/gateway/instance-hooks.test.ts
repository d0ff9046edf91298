/** Instance hooks through the gateway's instance service (issue 13): validation, the secret shown once, tenancy. */
import { describe, expect, it } from 'vitest';
import { CreateInstanceBody, UpdateInstanceBody } from '@cairn/core/api/index.ts';
import { admin, gatewayFixture, member, rejection } from './gateway-fixture.ts';

const webhook = { type: 'webhook' as const, url: 'https://hooks.example/cairn', timeoutSeconds: 30, onError: 'fail' as const };
const command = (name: string) => ({ type: 'command' as const, name, timeoutSeconds: 30, onError: 'continue' as const });

function setup() {
  const f = gatewayFixture();
  const node = f.records.seedNode({ id: 'n1', volumeRoots: ['/srv/a'], hookCommands: ['pg-checkpoint', 'fsfreeze'] });
  f.records.seedNode({ id: 'n2', volumeRoots: ['/srv/a'], hookCommands: [] });
  const acme = f.tenant('acme');
  const other = f.tenant('other');
  return { f, node, acme, other };
}

describe('instance hooks', () => {
  it('request schemas: defaults, a closed set of fields, http(s) URLs only', () => {
    const ok = CreateInstanceBody.parse({
      name: 'db',
      nodeId: 'n1',
      volumes: [{ name: 'data', hostPath: '/srv/a/data' }],
      hooks: { preBackup: { type: 'webhook', url: 'https://x.example/h' } },
    });
    expect(ok.hooks?.preBackup).toEqual({ type: 'webhook', url: 'https://x.example/h', timeoutSeconds: 30, onError: 'fail' });
    for (const hooks of [
      { preBackup: { type: 'webhook', url: 'file:///etc/passwd' } },
      { preBackup: { type: 'command', name: 'x', argv: ['/bin/sh'] } },
      { preBackup: { type: 'shell', command: 'rm -rf /' } },
      { duringBackup: { type: 'command', name: 'x' } },
      { preBackup: { type: 'command', name: 'x', timeoutSeconds: 0 } },
      { preBackup: { type: 'command', name: 'x', onError: 'ignore' } },
    ]) {
      expect(UpdateInstanceBody.safeParse({ hooks }).success, JSON.stringify(hooks)).toBe(false);
    }
    expect(UpdateInstanceBody.safeParse({ hooks: null }).success).toBe(true);
    expect(UpdateInstanceBody.safeParse({ rotateHookSecret: true }).success).toBe(true);
  });

  it('hooks given at creation are stored; the secret is in that response only', async () => {
    const { f } = setup();
    const created = await f.instances.register(admin, {
      name: 'db',
      nodeId: 'n1',
      tenant: 'acme',
      volumes: [{ name: 'data', hostPath: '/srv/a/data' }],
      hooks: { preBackup: command('pg-checkpoint'), postBackup: webhook },
    });
    expect(created.hookSecret).toMatch(/^whsec_/);
    expect(created.hooks).toEqual({ preBackup: command('pg-checkpoint'), postBackup: webhook });
    const shown = await f.instances.get(admin, created.id);
    expect(shown.hooks).toEqual(created.hooks);
    expect(shown).not.toHaveProperty('hookSecret');
    expect(JSON.stringify(await f.instances.list(admin, { limit: 50 }))).not.toContain(created.hookSecret);
    expect((await f.records.hooks.getConfig(created.id))?.secret).toBe(created.hookSecret);
  });

  it('a command the node does not define is a 400 naming the hook and the command', async () => {
    const { f, acme } = setup();
    const err = await rejection(
      f.instances.register(member(acme.id), {
        name: 'db',
        nodeId: 'n1',
        volumes: [{ name: 'data', hostPath: '/srv/a/data' }],
        hooks: { preBackup: command('rm-rf') },
      }),
    );
    expect(err.code).toBe('validation');
    expect(err.message).toContain('hooks.preBackup.name');
    expect(err.message).toContain('node n1 defines no hook command rm-rf (its hooks file defines: pg-checkpoint, fsfreeze)');
    expect(await f.records.instances.find({ tenantId: acme.id })).toEqual([]);
  });

  it('PATCH: the first hooks make the secret, shown once; replacing keeps it; rotation makes a new one; null removes the hooks', async () => {
    const { f, acme } = setup();
    const actor = member(acme.id);
    const created = await f.instances.register(actor, { name: 'db', nodeId: 'n1', volumes: [{ name: 'data', hostPath: '/srv/a/data' }] });
    expect(created.hooks).toBeNull();
    expect(created).not.toHaveProperty('hookSecret');
    const first = await f.instances.update(actor, created.id, { hooks: { preBackup: webhook } });
    expect(first.hookSecret).toMatch(/^whsec_/);
    const replaced = await f.instances.update(actor, created.id, { hooks: { preRestore: command('fsfreeze') } });
    expect(replaced.hooks).toEqual({ preRestore: command('fsfreeze') });
    expect(replaced).not.toHaveProperty('hookSecret');
    const rotated = await f.instances.update(actor, created.id, { rotateHookSecret: true });
    expect(rotated.hookSecret).toMatch(/^whsec_/);
    expect(rotated.hookSecret).not.toBe(first.hookSecret);
    expect((await f.records.hooks.getConfig(created.id))?.secret).toBe(rotated.hookSecret);
    const removed = await f.instances.update(actor, created.id, { hooks: null });
    expect(removed.hooks).toBeNull();
    const renamed = await f.instances.update(actor, created.id, { name: 'db2' });
    expect(renamed).not.toHaveProperty('hookSecret');
  });

  it('moving an instance to a node that lacks one of its commands is refused, naming it', async () => {
    const { f } = setup();
    const created = await f.instances.register(admin, {
      name: 'db',
      nodeId: 'n1',
      tenant: 'acme',
      volumes: [{ name: 'data', hostPath: '/srv/a/data' }],
      hooks: { postRestore: command('fsfreeze') },
    });
    const err = await rejection(f.instances.update(admin, created.id, { nodeId: 'n2' }));
    expect(err.code).toBe('validation');
    expect(err.message).toContain('hooks.postRestore.name: node n2 defines no hook command fsfreeze (it has no hooks file)');
    expect((await f.records.instances.get(created.id))?.nodeId).toBe('n1');
  });

  it("another tenant's hooks are not found, neither shown nor changed", async () => {
    const { f, acme, other } = setup();
    const created = await f.instances.register(member(acme.id), {
      name: 'db',
      nodeId: 'n1',
      volumes: [{ name: 'data', hostPath: '/srv/a/data' }],
      hooks: { preBackup: webhook },
    });
    const stranger = member(other.id);
    expect((await rejection(f.instances.get(stranger, created.id))).code).toBe('not-found');
    expect((await rejection(f.instances.update(stranger, created.id, { hooks: null }))).code).toBe('not-found');
    expect((await rejection(f.instances.update(stranger, created.id, { rotateHookSecret: true }))).code).toBe('not-found');
    expect((await f.instances.list(stranger, { limit: 50 })).items).toEqual([]);
    expect((await f.instances.get(member(acme.id), created.id)).hooks).toEqual({ preBackup: webhook });
  });
});
