import fs from 'node:fs';
import { DEFAULT_HOOK_TIMEOUT_SECONDS } from '@cairn/core/domain/hooks.ts';
import { describe, expect, it } from 'vitest';
import { parseApplyFile } from '../../services/cli/src/apply/apply-file.ts';
import { type CurrentState, planApply } from '../../services/cli/src/apply/apply-plan.ts';

/** `cairn apply`'s file checks and plan (pure: the server's state is given). The e2e test is test/cli/cli-apply.test.ts. */
const FILE = `
instances:
  - name: shop
    tenant: default
    volumes:
      - { name: db, hostPath: '\${ROOT}/shop/db' }
      - { name: uploads, hostPath: '\${ROOT}/shop/uploads', excludes: ['cache/**'] }
    policy: { manualBackupLimit: 20 }
    schedules:
      - { cron: '0 3 * * *', timezone: europe/berlin, retention: { keepDaily: 7 } }
`;
const env = { ROOT: '/srv/a' };
const empty = (): CurrentState => ({
  instances: [],
  nodes: [
    { id: 'host-a', volumeRoots: ['/srv/a'] },
    { id: 'host-b', volumeRoots: ['/srv/b'] },
  ],
  policies: new Map(),
  schedules: new Map(),
});
/** The server after the plan of FILE was applied, as the API would answer. */
const applied = (): CurrentState => ({
  ...empty(),
  instances: [
    {
      id: 'i1',
      name: 'shop',
      tenant: 'default',
      nodeId: 'host-a',
      hooks: null,
      volumes: [
        { name: 'uploads', hostPath: '/srv/a/shop/uploads', excludes: ['cache/**'] },
        { name: 'db', hostPath: '/srv/a/shop/db', excludes: [] },
      ],
    },
  ],
  policies: new Map([['i1', { manualBackupLimit: 20, manualRetention: null, timezone: 'UTC' }]]),
  schedules: new Map([['i1', [{ id: 's1', cron: '0 3 * * *', timezone: 'Europe/Berlin', retention: { keepDaily: 7 }, volumes: null, enabled: true }]]]),
});
const plan = (text: string, current: CurrentState, prune = false) => planApply(parseApplyFile(text, 'f.yaml', env), current, { prune, source: 'f.yaml' });

describe('cairn apply: the file', () => {
  // biome-ignore lint/suspicious/noTemplateCurlyInString: the apply file's own ${VAR} syntax
  it('reads ${VAR} and ${VAR:-default} from the environment, and names an unset variable', () => {
    // biome-ignore lint/suspicious/noTemplateCurlyInString: the apply file's own ${VAR} syntax
    const d = parseApplyFile("instances: [{name: a, node: '${N:-host-a}', volumes: [{name: v, hostPath: '${ROOT}/a'}]}]", 'f.yaml', env);
    expect(d.instances[0]).toMatchObject({ node: 'host-a', volumes: [{ hostPath: '/srv/a/a' }] });
    // biome-ignore lint/suspicious/noTemplateCurlyInString: the apply file's own ${VAR} syntax
    expect(() => parseApplyFile("instances: [{name: a, volumes: [{name: v, hostPath: '${NOPE}/a'}]}]", 'f.yaml', {})).toThrow(
      /f\.yaml\.instances\[0\]\.volumes\[0\]\.hostPath: variable NOPE is not set/,
    );
  });

  it("refuses what the API would refuse, with the API's messages and where in the file", () => {
    expect(() => parseApplyFile('instances: [{name: a, volumes: [{name: v, hostPath: rel/a}]}]', 'f.yaml')).toThrow(
      /instances\[0\]\.volumes\[0\]\.hostPath: must be an absolute path/,
    );
    expect(() =>
      parseApplyFile("instances: [{name: a, volumes: [{name: v, hostPath: /a}], schedules: [{cron: 'often', retention: {keepLast: 1}}]}]", 'f.yaml'),
    ).toThrow(/instances\[0\]\.schedules\[0\]\.cron: /);
    expect(() => parseApplyFile('instances: [{name: a, volumes: [{name: v, hostPath: /a}], colour: blue}]', 'f.yaml')).toThrow(/colour/);
    expect(() => parseApplyFile('instances: [{name: a, volumes: [{name: v, hostPath: /a}]}, {name: a, volumes: [{name: v, hostPath: /b}]}]', 'f.yaml')).toThrow(
      /instance a is listed twice/,
    );
    expect(() => parseApplyFile('instances: [', 'f.yaml')).toThrow(/^f\.yaml: /);
  });

  it('reads examples/cairn.yaml', () => {
    const d = parseApplyFile(fs.readFileSync('examples/cairn.yaml', 'utf8'), 'examples/cairn.yaml', { PWD: '/home/me/cairn' });
    expect(d.instances.map((i) => i.name)).toEqual(['shop']);
    expect(d.instances[0]!.volumes[0]!.hostPath).toBe('/home/me/cairn/.cairn/volumes/shop/db');
  });
});

describe('cairn apply: the plan', () => {
  it('creates a new instance on the node whose volume roots hold its paths, then its policy and schedules', () => {
    const steps = plan(FILE, empty());
    expect(steps.map((s) => [s.object, s.action])).toEqual([
      ['instance default/shop', 'create'],
      ['policy of default/shop', 'create'],
      ['schedule "0 3 * * *" Europe/Berlin of default/shop', 'create'],
    ]);
    expect(steps[0]!.request).toMatchObject({ method: 'POST', path: '/v1/instances', body: { name: 'shop', nodeId: 'host-a', tenant: 'default' } });
    expect(steps[1]!.request).toEqual({ method: 'PATCH', path: '/v1/instances/{instance}/policy', body: { manualBackupLimit: 20 } });
    expect(steps[2]!.request).toMatchObject({ path: '/v1/instances/{instance}/schedules', body: { timezone: 'Europe/Berlin', enabled: true } });
  });

  it('asks for the node when the volume roots do not decide it', () => {
    const state = empty();
    state.nodes.push({ id: 'host-c', volumeRoots: ['/srv'] });
    expect(() => plan(FILE, state)).toThrow(/instances\[0\]\.node: required: nodes host-a, host-c all have volume roots holding its paths/);
  });

  it('changes nothing when the server already matches (volume order, key order and time zone case aside)', () => {
    const steps = plan(FILE, applied());
    expect(steps.map((s) => s.action)).toEqual(['unchanged', 'unchanged', 'unchanged']);
    expect(steps.some((s) => s.request)).toBe(false);
  });

  it('updates only what differs, with the change spelled out', () => {
    const changed = FILE.replace('keepDaily: 7', 'keepDaily: 14').replace("excludes: ['cache/**']", "excludes: ['cache/**', '*.tmp']");
    const steps = plan(changed, applied());
    expect(steps.map((s) => s.action)).toEqual(['update', 'unchanged', 'update']);
    expect(steps[0]!.request).toMatchObject({ method: 'PATCH', path: '/v1/instances/i1' });
    expect(steps[0]!.changes[0]).toMatch(/^volumes: .*uploads=\/srv\/a\/shop\/uploads \(excludes cache\/\*\*, \*\.tmp\)$/);
    expect(steps[2]!.request).toEqual({ method: 'PATCH', path: '/v1/schedules/s1', body: { retention: { keepDaily: 14 } } });
    expect(steps[2]!.changes).toEqual(['retention: keepDaily 7 → keepDaily 14']);
  });

  it("compares hooks with the API's defaults filled in; hooks: null removes them; no hooks key leaves them", () => {
    const withHook = FILE.replace('    policy:', "    hooks: { preBackup: { type: webhook, url: 'https://shop.example/freeze' } }\n    policy:");
    const state = applied();
    state.instances[0]!.hooks = {
      preBackup: { type: 'webhook', url: 'https://shop.example/freeze', timeoutSeconds: DEFAULT_HOOK_TIMEOUT_SECONDS, onError: 'fail' },
    };
    expect(plan(withHook, state)[0]).toMatchObject({ action: 'unchanged' });
    expect(plan(FILE, state)[0]).toMatchObject({ action: 'unchanged' });
    const removed = plan(FILE.replace('    policy:', '    hooks: null\n    policy:'), state)[0]!;
    expect(removed).toMatchObject({ action: 'update', changes: ['hooks: preBackup webhook https://shop.example/freeze → none'] });
    expect(removed.request).toEqual({ method: 'PATCH', path: '/v1/instances/i1', body: { hooks: null } });
    expect(plan(withHook, applied())[0]!.request).toMatchObject({ body: { hooks: { preBackup: { type: 'webhook', onError: 'fail' } } } });
  });

  it('updates a schedule whose cron changed in place, keeps one not in the file unless --prune', () => {
    const state = applied();
    state.schedules.get('i1')!.push({ id: 's2', cron: '@hourly', timezone: 'UTC', retention: { keepLast: 3 }, volumes: ['db'], enabled: true });
    const moved = plan(FILE.replace("'0 3 * * *'", "'30 4 * * *'"), state);
    expect(moved.slice(2).map((s) => [s.action, s.request?.path])).toEqual([
      ['update', '/v1/schedules/s1'],
      ['kept', undefined],
    ]);
    expect(plan(FILE, state, true).slice(3)).toMatchObject([{ action: 'delete', request: { method: 'DELETE', path: '/v1/schedules/s2' } }]);
  });
});
