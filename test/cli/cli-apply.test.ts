import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Cairn, startCairn } from '../support/cairn-harness.ts';
import { CLI_TEST_TIMEOUT, cliFor } from './cli-fixture.ts';

/** `cairn apply -f` against a whole Cairn: the README's example file, applied twice, a dry run, a change, --json. */
describe('cairn apply', { timeout: CLI_TEST_TIMEOUT }, () => {
  let cairn: Cairn;
  /** Stands for a clone of the repository: examples/cairn.yaml's paths are ${PWD}/.cairn/volumes/..., inside the node's volume root here. */
  let clone: string;
  let cli: ReturnType<typeof cliFor>;

  beforeAll(async () => {
    cairn = await startCairn(); // its node worker registers the node whose volume roots apply picks
    clone = path.join(cairn.volumeRoot, 'clone');
    fs.mkdirSync(clone, { recursive: true });
    cli = cliFor(cairn, { cwd: clone, env: { PWD: clone } });
  });
  afterAll(async () => {
    await cairn?.close();
  });

  const shop = async () => {
    const { body } = await cairn.api('GET', '/v1/instances?limit=500');
    return body.items.find((i: { name: string; tenant: string }) => i.name === 'shop' && i.tenant === 'default');
  };

  it("applies the README's example: a dry run changes nothing, the first apply creates, the second reports no change", async () => {
    const example = path.resolve('examples/cairn.yaml');
    const dry = await cli('apply', '-f', example, '--dry-run');
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toMatch(/^dry run: nothing is changed$/m);
    expect(dry.stdout).toMatch(/^instance default\/shop: create$/m);
    expect(dry.stdout).toContain(`volume db=${clone}/.cairn/volumes/shop/db`);
    expect(dry.stdout).toMatch(/^policy of default\/shop: create$/m);
    expect(dry.stdout).toMatch(/^schedule "0 3 \* \* \*" Europe\/Berlin of default\/shop: create$/m);
    expect(dry.stdout.trim().split('\n').at(-1)).toBe('4 to create');
    expect(await shop()).toBeUndefined();

    const first = await cli('apply', '-f', example);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toMatch(/^instance default\/shop: created$/m);
    expect(first.stdout.trim().split('\n').at(-1)).toBe('4 created');
    const created = await shop();
    expect(created).toMatchObject({ nodeId: cairn.nodeId });
    expect(created.volumes).toEqual([
      { name: 'db', hostPath: `${clone}/.cairn/volumes/shop/db`, excludes: [] },
      { name: 'uploads', hostPath: `${clone}/.cairn/volumes/shop/uploads`, excludes: ['cache/**', '*.tmp'] },
    ]);
    expect((await cairn.api('GET', `/v1/instances/${created.id}/policy`)).body).toMatchObject({ manualBackupLimit: 20, manualRetention: { keepLast: 10 } });
    const schedules = (await cairn.api('GET', `/v1/instances/${created.id}/schedules`)).body.items;
    expect(schedules.map((s: { cron: string; timezone: string; volumes: string[] | null }) => [s.cron, s.timezone, s.volumes]).sort()).toEqual([
      ['0 * * * *', 'UTC', ['db']],
      ['0 3 * * *', 'Europe/Berlin', null],
    ]);

    const second = await cli('apply', '-f', example);
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout.trim().split('\n').at(-1)).toBe('no changes (4 objects up to date)');
    expect(second.stdout).not.toMatch(/created|updated/);
    expect((await shop()).updatedAt).toBe(created.updatedAt);
  });

  it('applies a change as an update, --prune deletes a schedule left out, --json tells the steps', async () => {
    const file = path.join(clone, 'changed.yaml');
    const text = fs
      .readFileSync('examples/cairn.yaml', 'utf8')
      .replace('keepDaily: 7', 'keepDaily: 14')
      .replace(/ {6}- cron: "0 \* \* \* \*"\n.*\n.*\n/, '');
    expect(text).not.toContain('keepHourly');
    fs.writeFileSync(file, text);
    const dry = await cli('apply', '-f', file, '--dry-run', '--json');
    expect(dry.code, dry.stderr).toBe(0);
    const plan = JSON.parse(dry.stdout);
    expect(plan).toMatchObject({ dryRun: true, changed: false });
    expect(plan.steps).toContainEqual({
      object: 'schedule "0 3 * * *" Europe/Berlin of default/shop',
      action: 'update',
      changes: ['retention: keepDaily 7, keepWeekly 4 → keepDaily 14, keepWeekly 4'],
      instance: 'default/shop',
    });
    expect(plan.steps.find((s: { object: string }) => s.object.startsWith('schedule "0 * * * *"'))).toMatchObject({ action: 'kept' });

    const pruned = await cli('apply', '-f', file, '--prune');
    expect(pruned.code, pruned.stderr).toBe(0);
    expect(pruned.stdout.trim().split('\n').at(-1)).toBe('1 updated, 1 deleted, 2 unchanged');
    const schedules = (await cairn.api('GET', `/v1/instances/${(await shop()).id}/schedules`)).body.items;
    expect(schedules).toMatchObject([{ cron: '0 3 * * *', retention: { keepDaily: 14, keepWeekly: 4 } }]);
    expect((await cli('apply', '-f', file, '--prune')).stdout).toMatch(/^no changes/m);
  });

  it('refuses a bad file before sending anything (exit 2), and reports an API refusal (exit 1)', async () => {
    const bad = path.join(clone, 'bad.yaml');
    fs.writeFileSync(bad, 'instances:\n  - name: other\n    volumes: [{ name: data, hostPath: relative/data }]\n');
    const refused = await cli('apply', '-f', bad);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('instances[0].volumes[0].hostPath: must be an absolute path');

    // Inside the node's roots, but overlapping shop's volume: the API refuses the instance.
    const overlap = path.join(clone, 'overlap.yaml');
    fs.writeFileSync(
      overlap,
      `instances:\n  - name: other\n    tenant: default\n    volumes: [{ name: data, hostPath: '${clone}/.cairn/volumes/shop/db/inner' }]\n`,
    );
    const conflict = await cli('apply', '-f', overlap);
    expect(conflict.code).toBe(1);
    expect(conflict.stderr).toMatch(/^cairn: .*shop/m);
    expect((await cli('apply')).code).toBe(2);
  });
});
