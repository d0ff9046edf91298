import { type CairnClient, UsageError } from './api-client.ts';
import type { BackupStarted, DeletedSchedule, Page, RetentionPlan, Row } from './api-responses.ts';
import { type Opts, csv, enc, need, retentionFlags } from './cli-options.ts';
import { printRetentionPlan } from './backups.command.ts';
import { resolveInstanceId } from './instance-ref.ts';
import { finishJob } from './jobs.command.ts';
import { printJson, printTable } from './output.ts';

export const SCHEDULES_USAGE = `  schedules [list] <instance>                    list an instance's schedules
  schedules create <instance> --cron C [--tz Z] [--keep-last N] [--keep-hourly N] [--keep-daily N] [--keep-weekly N]
                   [--keep-monthly N] [--keep-yearly N] [--max-age-days N] [--volumes a,b] [--disable]
                                                 (also: schedule <instance> ...)
  schedules show <scheduleId>
  schedules update <scheduleId> [--cron C] [--tz Z] [--keep-... N] [--volumes a,b | --all-volumes] [--enable | --disable]
                                                 --keep-* flags replace the whole retention policy
  schedules run <scheduleId> [--no-wait]         back up now with the schedule's volumes and retention
  schedules preview <scheduleId> [--keep-... N]  what retention would keep and delete (changes nothing)
  schedules delete <scheduleId>`;

const SUBCOMMANDS = new Set(['list', 'create', 'show', 'update', 'run', 'preview', 'delete']);

function enabledFlag(o: Opts): boolean | undefined {
  if (o.enable && o.disable) throw new UsageError('--enable and --disable exclude each other');
  return o.enable ? true : o.disable ? false : undefined;
}

function printSchedules(items: Record<string, unknown>[]): void {
  printTable(
    items.map((s) => ({ ...s, volumes: Array.isArray(s.volumes) ? s.volumes.join(',') : 'all' })),
    ['id', 'cron', 'timezone', 'enabled', 'volumes', 'retention', 'nextRunAt', 'lastFiredAt'],
  );
}

/** `schedules …`, and `schedule <instance> …` (create). `schedules <instance>` lists, as before the subcommands. */
export async function schedulesCommand(client: CairnClient, command: string, args: string[], o: Opts): Promise<number> {
  const [sub, ...rest] = command === 'schedule' ? ['create', ...args] : SUBCOMMANDS.has(args[0] ?? '') ? args : ['list', ...args];
  switch (sub) {
    case 'list': {
      const page = await client.request<Page<Row>>('GET', `/v1/instances/${enc(await resolveInstanceId(client, need(rest[0], 'instance')))}/schedules`);
      if (o.json) printJson(page);
      else printSchedules(page.items);
      return 0;
    }
    case 'create': {
      const id = await resolveInstanceId(client, need(rest[0], 'instance'));
      const enabled = enabledFlag(o);
      const body = {
        cron: need(o.cron, '--cron'),
        timezone: o.tz ?? 'UTC',
        retention: retentionFlags(o),
        ...(o.volumes !== undefined ? { volumes: csv(o.volumes) } : {}),
        ...(enabled !== undefined ? { enabled } : {}),
      };
      const schedule = await client.request<Row>('POST', `/v1/instances/${enc(id)}/schedules`, body);
      if (o.json) printJson(schedule);
      else printSchedules([schedule]);
      return 0;
    }
    case 'show': {
      const schedule = await client.request<Row>('GET', `/v1/schedules/${enc(need(rest[0], 'schedule id'))}`);
      if (o.json) printJson(schedule);
      else printSchedules([schedule]);
      return 0;
    }
    case 'update': {
      if (o.volumes !== undefined && o['all-volumes']) throw new UsageError('--volumes and --all-volumes exclude each other');
      const retention = retentionFlags(o);
      const enabled = enabledFlag(o);
      const body = {
        ...(o.cron ? { cron: o.cron } : {}),
        ...(o.tz ? { timezone: o.tz } : {}),
        ...(Object.keys(retention).length ? { retention } : {}),
        ...(o.volumes !== undefined ? { volumes: csv(o.volumes) } : o['all-volumes'] ? { volumes: null } : {}),
        ...(enabled !== undefined ? { enabled } : {}),
      };
      if (!Object.keys(body).length) throw new UsageError('nothing to change: give --cron, --tz, --keep-*, --volumes, --all-volumes, --enable or --disable');
      const schedule = await client.request<Row>('PATCH', `/v1/schedules/${enc(need(rest[0], 'schedule id'))}`, body);
      if (o.json) printJson(schedule);
      else printSchedules([schedule]);
      return 0;
    }
    case 'run': {
      const res = await client.request<BackupStarted>('POST', `/v1/schedules/${enc(need(rest[0], 'schedule id'))}/run`);
      console.error(`backup ${res.backup.id} queued (job ${res.job.id})`);
      return finishJob(client, res.job, o);
    }
    case 'preview': {
      const retention = retentionFlags(o);
      const plan = await client.request<RetentionPlan>('POST', `/v1/schedules/${enc(need(rest[0], 'schedule id'))}/retention/preview`, {
        ...(Object.keys(retention).length ? { retention } : {}),
      });
      if (o.json) printJson(plan);
      else printRetentionPlan(plan);
      return 0;
    }
    case 'delete': {
      const id = need(rest[0], 'schedule id');
      const res = await client.request<DeletedSchedule>('DELETE', `/v1/schedules/${enc(id)}`);
      if (o.json) printJson(res);
      else console.log(`schedule ${id} deleted; its ${res.keptBackups} backup(s) kept`);
      return 0;
    }
    default:
      throw new UsageError(`unknown schedules command ${sub}`);
  }
}
