import fs from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { ApiError, type CairnClient, UsageError } from './api-client.ts';
import type { Backup, BackupStarted, BatchDeleteResult, FileEntry, JobStarted, Page, RetentionPlan, Row } from './api-responses.ts';
import { type Opts, enc, need, query, retentionFlags } from './cli-options.ts';
import { resolveInstanceId } from './instance-ref.ts';
import { finishJob } from './jobs.command.ts';
import { followJob } from './job-progress.ts';
import { humanBytes, printJson, printTable, withSizes } from './output.ts';
import { confirmReplace, printDryRun } from './restore-plan.ts';

export const BACKUPS_USAGE = `  backup <instance> [--volume V]... [--kind auto|full|incremental] [--name N] [--note T] [--pin] [--no-wait]
  backups <instance> [--status S] [--name-prefix P] [--pinned | --unpinned]
                                                 list backups (with their names and pins)
  show <backupId>                                one backup (kind, parent, stored/reused/exclusive size, name, pin, note)
  name <backupId> <name> | name <backupId> --clear
                                                 name a backup (unique among the instance's backups), or remove its name
  note <backupId> <text> | note <backupId> --clear
  pin <backupId>...                              pin: never expired by retention, not counted against the manual limit, not deletable
  unpin <backupId>...
  policy <instance> [--manual-limit N|default] [--keep-... N | --no-retention] [--tz Z] [--preview]
                                                 show or change the instance's manual limit and manual retention; --preview: dry run
  files <backupId> [--prefix P]                  browse a backup
  download <backupId> [--path P] [-o FILE]       whole archive, or one path as a tar (-o -: to stdout; --json: {file, bytes})
  restore <backupId> [--target INSTANCE] [--volume V]... [--path P]... [--mode replace|merge] [--dry-run] [--yes] [--no-wait]
                                                 --dry-run: what would be created, changed, deleted (nothing is written);
                                                 a replace first shows that and asks (scripts: --yes)
  delete <backupId>...                           soft delete, several at once (objects removed by cleanup)`;

const KINDS = ['auto', 'full', 'incremental'];
const SIZES = ['storedBytes', 'reusedBytes', 'logicalBytes', 'exclusiveBytes'];

const kindOf = (b: Pick<Backup, 'kind' | 'parentId'>) => (b.kind === 'incremental' ? `incremental on ${b.parentId}` : b.kind);
/** ` "name"` and ` (pinned)` after a backup id in messages, when it has them. */
const labelOf = (b: { name?: unknown; pinned?: unknown }) => `${typeof b.name === 'string' ? ` "${b.name}"` : ''}${b.pinned === true ? ' (pinned)' : ''}`;

async function backup(client: CairnClient, args: string[], o: Opts): Promise<number> {
  if (o.kind && !KINDS.includes(o.kind)) throw new UsageError(`--kind must be ${KINDS.join(', ')}`);
  const id = await resolveInstanceId(client, need(args[0], 'instance'));
  const body = {
    ...(o.volume ? { volumes: o.volume } : {}),
    ...(o.kind ? { kind: o.kind } : {}),
    ...(o.name !== undefined ? { name: o.name } : {}),
    ...(o.note !== undefined ? { note: o.note } : {}),
    ...(o.pin ? { pinned: true } : {}),
  };
  const res = await client.request<BackupStarted>('POST', `/v1/instances/${enc(id)}/backups`, body);
  console.error(`backup ${res.backup.id}${labelOf(res.backup)} queued, ${kindOf(res.backup)} (job ${res.job.id})`);
  if (o['no-wait']) {
    if (o.json) printJson(res);
    else console.log(res.job.id);
    return 0;
  }
  const done = await followJob(client, res.job.id);
  const finished = await client.request<Backup>('GET', `/v1/backups/${enc(res.backup.id)}`);
  if (o.json) printJson({ backup: finished, job: await client.request('GET', `/v1/jobs/${enc(res.job.id)}`) });
  else {
    console.log(`job ${done.id} ${done.status}${done.error ? `: ${done.error}` : ''}`);
    const sizes = `stored ${humanBytes(finished.storedBytes) ?? '-'}, reused ${humanBytes(finished.reusedBytes) ?? '-'}, whole tree ${
      humanBytes(finished.logicalBytes) ?? '-'
    }`;
    console.log(`backup ${finished.id} ${finished.status}, ${kindOf(finished)}: ${sizes}`);
  }
  return done.status === 'succeeded' ? 0 : 1;
}

async function policy(client: CairnClient, args: string[], o: Opts): Promise<number> {
  const route = `/v1/instances/${enc(await resolveInstanceId(client, need(args[0], 'instance')))}/policy`;
  const keeps = retentionFlags(o);
  const hasKeeps = Object.keys(keeps).length > 0;
  if (hasKeeps && o['no-retention']) throw new UsageError('--no-retention excludes the --keep-*/--max-age-days flags');
  if (o.preview) {
    if (o['manual-limit'] !== undefined || o['no-retention']) throw new UsageError('--preview takes only --keep-*/--max-age-days and --tz');
    const plan = await client.request<RetentionPlan>('POST', `${route}/retention/preview`, {
      ...(hasKeeps ? { retention: keeps } : {}),
      ...(o.tz ? { timezone: o.tz } : {}),
    });
    if (o.json) printJson(plan);
    else printRetentionPlan(plan);
    return 0;
  }
  const limit = o['manual-limit'];
  if (limit !== undefined && limit !== 'default' && !/^\d+$/.test(limit)) throw new UsageError('--manual-limit must be a whole number or default');
  const body = {
    ...(limit !== undefined ? { manualBackupLimit: limit === 'default' ? null : Number(limit) } : {}),
    ...(hasKeeps ? { manualRetention: keeps } : o['no-retention'] ? { manualRetention: null } : {}),
    ...(o.tz ? { timezone: o.tz } : {}),
  };
  printJson(Object.keys(body).length ? await client.request('PATCH', route, body) : await client.request('GET', route));
  return 0;
}

/** A retention preview (instance or schedule) as a table: what is kept and why, what is deleted. */
export function printRetentionPlan(plan: RetentionPlan): void {
  const rows = [
    ...plan.keep.map((k) => ({ backupId: k.backupId, createdAt: k.createdAt, action: 'keep', why: k.reasons.map((r) => `${r.rule} ${r.bucket}`).join(', ') })),
    ...plan.drop.map((d) => ({ ...d, action: 'delete', why: d.reason })),
    ...(plan.pinned ?? []).map((id) => ({ backupId: id, action: 'keep', why: 'pinned' })),
  ];
  printTable(rows, ['backupId', 'createdAt', 'action', 'why']);
}

/** The backup commands: start, list, show, annotate, browse, download, restore, delete, and the instance's manual policy. */
export async function backupsCommand(client: CairnClient, command: string, args: string[], o: Opts): Promise<number> {
  switch (command) {
    case 'backup':
      return backup(client, args, o);
    case 'backups': {
      if (o.pinned && o.unpinned) throw new UsageError('--pinned and --unpinned exclude each other');
      const id = await resolveInstanceId(client, need(args[0], 'instance'));
      const pinned = o.pinned ? 'true' : o.unpinned ? 'false' : undefined;
      const page = await client.request<Page<Row>>(
        'GET',
        `/v1/instances/${enc(id)}/backups${query({ status: o.status, namePrefix: o['name-prefix'], pinned })}`,
      );
      if (o.json) printJson(page);
      else {
        const columns = [
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
        ];
        printTable(withSizes(page.items, SIZES), columns);
      }
      return 0;
    }
    case 'show': {
      const b = await client.request<Backup>('GET', `/v1/backups/${enc(need(args[0], 'backup id'))}`);
      if (o.json) printJson(b);
      else {
        const columns = ['id', 'status', 'trigger', 'kind', 'parentId', 'createdAt', 'completedAt', ...SIZES, 'fileCount', 'name', 'pinned'];
        printTable(withSizes([b], SIZES), columns);
        if (typeof b.note === 'string') console.log(`note: ${b.note}`);
      }
      return 0;
    }
    case 'name':
    case 'note': {
      const id = need(args[0], 'backup id');
      const value = o.clear ? null : need(args[1], command === 'name' ? 'name (or --clear)' : 'note text (or --clear)');
      if (o.clear && args[1] !== undefined) throw new UsageError(`give a ${command} or --clear, not both`);
      const b = await client.request<Backup>('PATCH', `/v1/backups/${enc(id)}`, { [command]: value });
      if (o.json) printJson(b);
      else console.log(`backup ${b.id}${labelOf(b)}: ${command} ${value === null ? 'removed' : 'set'}`);
      return 0;
    }
    case 'pin':
    case 'unpin': {
      if (!args.length) throw new UsageError('missing backup id');
      let failed = 0;
      const results: unknown[] = [];
      for (const id of args) {
        try {
          const b = await client.request<Backup>('PATCH', `/v1/backups/${enc(id)}`, { pinned: command === 'pin' });
          results.push(b);
          if (!o.json) console.log(`backup ${b.id}${labelOf(b)} ${command === 'pin' ? 'pinned' : 'unpinned'}`);
        } catch (err) {
          if (!(err instanceof ApiError)) throw err;
          failed++;
          results.push({ id, error: { code: err.code, message: err.message } });
          console.error(`cairn: backup ${id}: ${err.message}`);
        }
      }
      if (o.json) printJson(results);
      return failed ? 1 : 0;
    }
    case 'policy':
      return policy(client, args, o);
    case 'files': {
      const page = await client.request<Page<FileEntry>>('GET', `/v1/backups/${enc(need(args[0], 'backup id'))}/files${query({ prefix: o.prefix })}`);
      if (o.json) printJson(page);
      else {
        const rows = page.items.map((e: { mode?: number }) => ({ ...e, mode: typeof e.mode === 'number' ? e.mode.toString(8).padStart(4, '0') : e.mode }));
        printTable(withSizes(rows, ['size']), ['path', 'type', 'size', 'mode', 'mtime']);
      }
      return 0;
    }
    case 'download': {
      const id = need(args[0], 'backup id');
      const { stream, filename } = await client.download(`/v1/backups/${enc(id)}/download${query({ path: o.path?.[0] })}`);
      const file = o.output ?? filename ?? `${id}.tar`;
      if (file === '-' && o.json) throw new UsageError('--json with -o -: the archive itself goes to stdout');
      let bytes = 0;
      stream.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
      });
      await pipeline(stream, file === '-' ? process.stdout : fs.createWriteStream(file));
      // Not an API body (the archive is the answer): what was written, for scripts.
      if (o.json) printJson({ file, bytes });
      else if (file !== '-') console.error(`wrote ${file} (${humanBytes(bytes)})`);
      return 0;
    }
    case 'restore': {
      if (o.mode && o.mode !== 'replace' && o.mode !== 'merge') throw new UsageError('--mode must be replace or merge');
      const backupId = need(args[0], 'backup id');
      const body = {
        ...(o.target ? { targetInstanceId: await resolveInstanceId(client, o.target, 'target instance') } : {}),
        ...(o.volume ? { volumes: o.volume } : {}),
        ...(o.path ? { paths: o.path } : {}),
        ...(o.mode ? { mode: o.mode } : {}),
      };
      if (o['dry-run']) return printDryRun(client, backupId, body, o);
      if ((o.mode ?? 'replace') === 'replace' && !o.yes) await confirmReplace(client, backupId, body);
      const res = await client.request<JobStarted>('POST', `/v1/backups/${enc(backupId)}/restore`, body);
      console.error(`restore queued (job ${res.job.id})`);
      return finishJob(client, res.job, o);
    }
    case 'delete': {
      if (!args.length) throw new UsageError('missing backup id');
      const res = await client.request<BatchDeleteResult>('POST', '/v1/backups/delete', { ids: args });
      if (o.json) printJson(res);
      else {
        for (const r of res.results) {
          if (r.ok) console.log(`backup ${r.id} deleted`);
          else console.error(`cairn: backup ${r.id}: ${r.error?.message ?? 'not deleted'}`);
        }
      }
      return res.results.every((r) => r.ok) ? 0 : 1;
    }
    default:
      throw new UsageError(`unknown command ${command}`);
  }
}
