#!/usr/bin/env -S node --import tsx
/**
 * `cairn`: the command line of Cairn. Wraps the /v1 API, waits for jobs with a progress bar.
 * URL from --url or CAIRN_URL (default http://127.0.0.1:8080); token from --token, CAIRN_TOKEN,
 * or the all-in-one's .cairn/admin-token.
 */
import fs from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import { ApiError, CairnClient } from './api-client.ts';
import { CATALOG_USAGE, catalogCommand } from './catalog.command.ts';
import { KEYS_USAGE, keysCommand } from './keys.command.ts';
import { followJob } from './job-progress.ts';
import { MIGRATE_USAGE, migrateCommand } from './migrate.command.ts';
import { printTable } from './output.ts';
import { VERIFY_USAGE, verifyCommand } from './verify.command.ts';

const USAGE = `usage: cairn [--url URL] [--token TOKEN] <command> [options]

  nodes                                          list nodes and their heartbeat
  instances                                      list instances
  register --name N --node ID --volume name=/path [--volume ...] [--tenant T]
  coverage <instanceId>                          which volumes can be backed up
  backup <instanceId> [--volume V]... [--kind auto|full|incremental] [--name N] [--note T] [--pin] [--no-wait]
  backups <instanceId> [--status S] [--name-prefix P] [--pinned | --unpinned]
                                                 list backups (with their names and pins)
  show <backupId>                                one backup (kind, parent, stored/reused/exclusive bytes, name, pin, note)
  name <backupId> <name> | name <backupId> --clear
                                                 name a backup (unique among the instance's backups), or remove its name
  note <backupId> <text> | note <backupId> --clear
  pin <backupId>...                              pin: never expired by retention, not counted against the manual limit, not deletable
  unpin <backupId>...
  policy <instanceId> [--manual-limit N|default] [--keep-... N | --no-retention] [--tz Z] [--preview]
                                                 show or change the instance's manual limit and manual retention; --preview: dry run
  files <backupId> [--prefix P]                  browse a backup
  download <backupId> [--path P] [-o FILE]       whole archive, or one path as a tar
  restore <backupId> [--target ID] [--volume V]... [--path P]... [--mode replace|merge] [--no-wait]
${MIGRATE_USAGE}
${VERIFY_USAGE}
${CATALOG_USAGE}
${KEYS_USAGE}
  delete <backupId>...                           soft delete (objects removed by cleanup)
  jobs [--instance ID] [--status S] [--type T]   job history
  job <jobId> [--follow]                         show (and follow) a job
  cancel <jobId>                                 cancel a queued or running job
  schedules <instanceId>                         list schedules
  schedule <instanceId> --cron C [--tz Z] [--keep-last N] [--keep-daily N] [--keep-weekly N] [--keep-monthly N] [--max-age-days N]`;

const options = {
  url: { type: 'string' },
  token: { type: 'string' },
  name: { type: 'string' },
  node: { type: 'string' },
  tenant: { type: 'string' },
  volume: { type: 'string', multiple: true },
  path: { type: 'string', multiple: true },
  prefix: { type: 'string' },
  target: { type: 'string' },
  mode: { type: 'string' },
  kind: { type: 'string' },
  note: { type: 'string' },
  pin: { type: 'boolean', default: false },
  pinned: { type: 'boolean', default: false },
  unpinned: { type: 'boolean', default: false },
  'name-prefix': { type: 'string' },
  clear: { type: 'boolean', default: false },
  'manual-limit': { type: 'string' },
  'no-retention': { type: 'boolean', default: false },
  preview: { type: 'boolean', default: false },
  status: { type: 'string' },
  type: { type: 'string' },
  instance: { type: 'string' },
  output: { type: 'string', short: 'o' },
  cron: { type: 'string' },
  tz: { type: 'string' },
  'keep-last': { type: 'string' },
  'keep-hourly': { type: 'string' },
  'keep-daily': { type: 'string' },
  'keep-weekly': { type: 'string' },
  'keep-monthly': { type: 'string' },
  'keep-yearly': { type: 'string' },
  'max-age-days': { type: 'string' },
  'to-node': { type: 'string' },
  'to-instance': { type: 'string' },
  'from-backup': { type: 'string' },
  volumes: { type: 'string' },
  paths: { type: 'string' },
  'no-wait': { type: 'boolean', default: false },
  follow: { type: 'boolean', default: false },
  level: { type: 'string' },
  'sample-percent': { type: 'string' },
  'dry-run': { type: 'boolean', default: false },
  json: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

class UsageError extends Error {}

const KINDS = ['auto', 'full', 'incremental'];

type BackupRow = {
  id: string;
  status: string;
  kind: string;
  parentId: string | null;
  storedBytes: number | null;
  reusedBytes: number | null;
  logicalBytes: number | null;
  [key: string]: unknown;
};

const kindOf = (b: Pick<BackupRow, 'kind' | 'parentId'>) => (b.kind === 'incremental' ? `incremental on ${b.parentId}` : b.kind);
/** ` "name"` and ` (pinned)` after a backup id in messages, when it has them. */
const labelOf = (b: { name?: unknown; pinned?: unknown }) => `${typeof b.name === 'string' ? ` "${b.name}"` : ''}${b.pinned === true ? ' (pinned)' : ''}`;
const RETENTION_FLAGS = ['keep-last', 'keep-hourly', 'keep-daily', 'keep-weekly', 'keep-monthly', 'keep-yearly', 'max-age-days'] as const;

/** 1536 → "1.5 KiB"; null → "-". */
function bytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return '-';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(1)} ${units[u]}`;
}

function token(explicit?: string): string {
  if (explicit) return explicit;
  if (process.env.CAIRN_TOKEN) return process.env.CAIRN_TOKEN;
  const file = path.resolve(process.env.CAIRN_DATA_DIR ?? '.cairn', 'admin-token');
  if (fs.existsSync(file)) return fs.readFileSync(file, 'utf8').trim();
  throw new UsageError('no token: pass --token, set CAIRN_TOKEN, or run from the all-in-one directory (.cairn/admin-token)');
}

const need = (v: string | undefined, what: string): string => {
  if (!v) throw new UsageError(`missing ${what}`);
  return v;
};
const enc = encodeURIComponent;
const query = (q: Record<string, string | undefined>) => {
  const s = new URLSearchParams(Object.entries(q).filter((e): e is [string, string] => e[1] !== undefined)).toString();
  return s ? `?${s}` : '';
};
const int = (v: string | undefined, flag: string) => {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v)) throw new UsageError(`--${flag} must be a whole number`);
  return Number(v);
};

async function finish(client: CairnClient, job: { id: string }, wait: boolean): Promise<number> {
  if (!wait) {
    console.log(job.id);
    return 0;
  }
  const done = await followJob(client, job.id);
  console.log(`job ${done.id} ${done.status}${done.error ? `: ${done.error}` : ''}`);
  return done.status === 'succeeded' ? 0 : 1;
}

async function run(argv: string[]): Promise<number> {
  const { values: o, positionals } = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  const [command, ...args] = positionals;
  if (o.help || !command) {
    console.log(USAGE);
    return command || o.help ? 0 : 2;
  }
  const client = new CairnClient(o.url ?? process.env.CAIRN_URL ?? 'http://127.0.0.1:8080', token(o.token));
  const wait = !o['no-wait'];
  switch (command) {
    case 'nodes': {
      const { items } = await client.request('GET', '/v1/nodes');
      printTable(items, ['id', 'status', 'heartbeatAgeSeconds', 'runningJobs', 'version']);
      return 0;
    }
    case 'instances': {
      const { items } = await client.request('GET', '/v1/instances');
      printTable(items, ['id', 'name', 'tenant', 'nodeId']);
      return 0;
    }
    case 'register': {
      const volumes = (o.volume ?? []).map((spec) => {
        const m = /^([^=]+)=(\/.*)$/.exec(spec);
        if (!m) throw new UsageError(`--volume must be name=/absolute/path, got ${spec}`);
        return { name: m[1]!, hostPath: m[2]! };
      });
      if (!volumes.length) throw new UsageError('at least one --volume name=/path');
      const body = { name: need(o.name, '--name'), nodeId: need(o.node, '--node'), volumes, ...(o.tenant ? { tenant: o.tenant } : {}) };
      console.log(JSON.stringify(await client.request('POST', '/v1/instances', body), null, 2));
      return 0;
    }
    case 'coverage':
      console.log(JSON.stringify(await client.request('GET', `/v1/instances/${enc(need(args[0], 'instance id'))}/coverage`), null, 2));
      return 0;
    case 'backup': {
      if (o.kind && !KINDS.includes(o.kind)) throw new UsageError(`--kind must be ${KINDS.join(', ')}`);
      const body = {
        ...(o.volume ? { volumes: o.volume } : {}),
        ...(o.kind ? { kind: o.kind } : {}),
        ...(o.name !== undefined ? { name: o.name } : {}),
        ...(o.note !== undefined ? { note: o.note } : {}),
        ...(o.pin ? { pinned: true } : {}),
      };
      const res = await client.request('POST', `/v1/instances/${enc(need(args[0], 'instance id'))}/backups`, body);
      console.error(`backup ${res.backup.id}${labelOf(res.backup)} queued, ${kindOf(res.backup)} (job ${res.job.id})`);
      const code = await finish(client, res.job, wait);
      if (wait) {
        const done: BackupRow = await client.request('GET', `/v1/backups/${enc(res.backup.id)}`);
        const sizes = `stored ${bytes(done.storedBytes)}, reused ${bytes(done.reusedBytes)}, whole tree ${bytes(done.logicalBytes)}`;
        console.log(`backup ${done.id} ${done.status}, ${kindOf(done)}: ${sizes}`);
      }
      return code;
    }
    case 'backups': {
      if (o.pinned && o.unpinned) throw new UsageError('--pinned and --unpinned exclude each other');
      const pinned = o.pinned ? 'true' : o.unpinned ? 'false' : undefined;
      const q = query({ status: o.status, namePrefix: o['name-prefix'], pinned });
      const { items } = await client.request('GET', `/v1/instances/${enc(need(args[0], 'instance id'))}/backups${q}`);
      printTable(items, [
        'id',
        'status',
        'trigger',
        'kind',
        'parentId',
        'createdAt',
        'storedBytes',
        'reusedBytes',
        'logicalBytes',
        'fileCount',
        'name',
        'pinned',
      ]);
      return 0;
    }
    case 'show': {
      const b: BackupRow = await client.request('GET', `/v1/backups/${enc(need(args[0], 'backup id'))}`);
      printTable(
        [b],
        [
          'id',
          'status',
          'trigger',
          'kind',
          'parentId',
          'createdAt',
          'completedAt',
          'storedBytes',
          'reusedBytes',
          'logicalBytes',
          'exclusiveBytes',
          'fileCount',
          'name',
          'pinned',
        ],
      );
      if (typeof b.note === 'string') console.log(`note: ${b.note}`);
      return 0;
    }
    case 'name':
    case 'note': {
      const id = need(args[0], 'backup id');
      const value = o.clear ? null : need(args[1], command === 'name' ? 'name (or --clear)' : 'note text (or --clear)');
      if (o.clear && args[1] !== undefined) throw new UsageError(`give a ${command} or --clear, not both`);
      const b = await client.request('PATCH', `/v1/backups/${enc(id)}`, { [command]: value });
      console.log(`backup ${b.id}${labelOf(b)}: ${command} ${value === null ? 'removed' : 'set'}`);
      return 0;
    }
    case 'pin':
    case 'unpin': {
      if (!args.length) throw new UsageError('missing backup id');
      let failed = 0;
      for (const id of args) {
        try {
          const b = await client.request('PATCH', `/v1/backups/${enc(id)}`, { pinned: command === 'pin' });
          console.log(`backup ${b.id}${labelOf(b)} ${command === 'pin' ? 'pinned' : 'unpinned'}`);
        } catch (err) {
          if (!(err instanceof ApiError)) throw err;
          failed++;
          console.error(`cairn: backup ${id}: ${err.message}`);
        }
      }
      return failed ? 1 : 0;
    }
    case 'policy': {
      const instanceId = need(args[0], 'instance id');
      const route = `/v1/instances/${enc(instanceId)}/policy`;
      const keeps = Object.fromEntries(
        RETENTION_FLAGS.map((flag) => [flag.replace(/-(\w)/g, (_, c: string) => c.toUpperCase()), int(o[flag], flag)] as const).filter(
          ([, v]) => v !== undefined,
        ),
      );
      const hasKeeps = Object.keys(keeps).length > 0;
      if (hasKeeps && o['no-retention']) throw new UsageError('--no-retention excludes the --keep-*/--max-age-days flags');
      if (o.preview) {
        if (o['manual-limit'] !== undefined || o['no-retention']) throw new UsageError('--preview takes only --keep-*/--max-age-days and --tz');
        const plan = await client.request('POST', `${route}/retention/preview`, {
          ...(hasKeeps ? { retention: keeps } : {}),
          ...(o.tz ? { timezone: o.tz } : {}),
        });
        const rows = [
          ...plan.keep.map((k: { backupId: string; createdAt: string; reasons: { rule: string; bucket: string }[] }) => ({
            backupId: k.backupId,
            createdAt: k.createdAt,
            action: 'keep',
            why: k.reasons.map((r) => `${r.rule} ${r.bucket}`).join(', '),
          })),
          ...plan.drop.map((d: { backupId: string; createdAt: string; reason: string }) => ({ ...d, action: 'delete', why: d.reason })),
          ...plan.pinned.map((id: string) => ({ backupId: id, action: 'keep', why: 'pinned' })),
        ];
        printTable(rows, ['backupId', 'createdAt', 'action', 'why']);
        return 0;
      }
      const limit = o['manual-limit'];
      if (limit !== undefined && limit !== 'default' && !/^\d+$/.test(limit)) throw new UsageError('--manual-limit must be a whole number or default');
      const body = {
        ...(limit !== undefined ? { manualBackupLimit: limit === 'default' ? null : Number(limit) } : {}),
        ...(hasKeeps ? { manualRetention: keeps } : o['no-retention'] ? { manualRetention: null } : {}),
        ...(o.tz ? { timezone: o.tz } : {}),
      };
      const policy = Object.keys(body).length ? await client.request('PATCH', route, body) : await client.request('GET', route);
      console.log(JSON.stringify(policy, null, 2));
      return 0;
    }
    case 'files': {
      const { items } = await client.request('GET', `/v1/backups/${enc(need(args[0], 'backup id'))}/files${query({ prefix: o.prefix })}`);
      printTable(
        items.map((e: { mode?: number }) => ({ ...e, mode: typeof e.mode === 'number' ? e.mode.toString(8).padStart(4, '0') : e.mode })),
        ['path', 'type', 'size', 'mode', 'mtime'],
      );
      return 0;
    }
    case 'download': {
      const id = need(args[0], 'backup id');
      const { stream, filename } = await client.download(`/v1/backups/${enc(id)}/download${query({ path: o.path?.[0] })}`);
      const file = o.output ?? filename ?? `${id}.tar`;
      await pipeline(stream, file === '-' ? process.stdout : fs.createWriteStream(file));
      if (file !== '-') console.error(`wrote ${file}`);
      return 0;
    }
    case 'restore': {
      if (o.mode && o.mode !== 'replace' && o.mode !== 'merge') throw new UsageError('--mode must be replace or merge');
      const body = {
        ...(o.target ? { targetInstanceId: o.target } : {}),
        ...(o.volume ? { volumes: o.volume } : {}),
        ...(o.path ? { paths: o.path } : {}),
        ...(o.mode ? { mode: o.mode } : {}),
      };
      const res = await client.request('POST', `/v1/backups/${enc(need(args[0], 'backup id'))}/restore`, body);
      console.error(`restore queued (job ${res.job.id})`);
      return finish(client, res.job, wait);
    }
    case 'migrate':
      return migrateCommand(
        client,
        {
          instance: args[0],
          toNode: o['to-node'],
          toInstance: o['to-instance'],
          path: o.path,
          volumes: o.volumes,
          paths: o.paths,
          fromBackup: o['from-backup'],
          wait,
        },
        (message) => new UsageError(message),
      );
    case 'keys':
      return keysCommand(client, { sub: args[0], dryRun: o['dry-run'], json: o.json }, (message) => new UsageError(message));
    case 'catalog':
      return catalogCommand(client, { sub: args[0], dryRun: o['dry-run'], json: o.json }, (message) => new UsageError(message));
    case 'verify':
      return verifyCommand(client, { backup: args[0], level: o.level, samplePercent: o['sample-percent'], wait }, (message) => new UsageError(message));
    case 'delete': {
      if (!args.length) throw new UsageError('missing backup id');
      const res = await client.request('POST', '/v1/backups/delete', { ids: args });
      console.log(JSON.stringify(res, null, 2));
      return 0;
    }
    case 'jobs': {
      const { items } = await client.request('GET', `/v1/jobs${query({ instance: o.instance, status: o.status, type: o.type })}`);
      printTable(items, ['id', 'type', 'status', 'instanceId', 'nodeId', 'createdAt', 'error']);
      return 0;
    }
    case 'job': {
      const id = need(args[0], 'job id');
      if (o.follow) return finish(client, { id }, true);
      console.log(JSON.stringify(await client.request('GET', `/v1/jobs/${enc(id)}`), null, 2));
      return 0;
    }
    case 'cancel': {
      const res = await client.request('POST', `/v1/jobs/${enc(need(args[0], 'job id'))}/cancel`);
      console.log(`job ${res.id ?? res.job?.id ?? args[0]}: ${res.status ?? res.job?.status ?? 'cancel requested'}`);
      return 0;
    }
    case 'schedules': {
      const { items } = await client.request('GET', `/v1/instances/${enc(need(args[0], 'instance id'))}/schedules`);
      printTable(items, ['id', 'cron', 'timezone', 'enabled', 'nextRunAt', 'lastFiredAt']);
      return 0;
    }
    case 'schedule': {
      const retention = Object.fromEntries(
        (['keep-last', 'keep-hourly', 'keep-daily', 'keep-weekly', 'keep-monthly', 'keep-yearly', 'max-age-days'] as const)
          .map((flag) => [flag.replace(/-(\w)/g, (_, c: string) => c.toUpperCase()), int(o[flag], flag)] as const)
          .filter(([, v]) => v !== undefined),
      );
      const body = { cron: need(o.cron, '--cron'), timezone: o.tz ?? 'UTC', retention };
      console.log(JSON.stringify(await client.request('POST', `/v1/instances/${enc(need(args[0], 'instance id'))}/schedules`, body), null, 2));
      return 0;
    }
    default:
      throw new UsageError(`unknown command ${command}`);
  }
}

run(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof UsageError || (err as { code?: string }).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
      console.error(`cairn: ${(err as Error).message}\n\n${USAGE}`);
      process.exit(2);
    }
    if (err instanceof ApiError) {
      const details = Array.isArray(err.details)
        ? err.details.map((d: { path?: string; message?: string }) => `\n  ${d.path ?? ''}: ${d.message ?? ''}`).join('')
        : '';
      console.error(`cairn: ${err.message}${details}`);
      process.exit(1);
    }
    console.error(`cairn: ${(err as Error).message}`);
    process.exit(1);
  },
);
