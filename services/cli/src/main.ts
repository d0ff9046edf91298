/**
 * `cairn`: the command line of Cairn (run it through bin/cairn.mjs). Wraps the /v1 API, waits for
 * jobs with a progress bar. Where the gateway is and which token to use: cli-config.ts.
 */
import { parseArgs } from 'node:util';
import { ApiError, CairnClient, UsageError } from './api-client.ts';
import { BACKUPS_USAGE, backupsCommand } from './backups.command.ts';
import { CATALOG_USAGE, catalogCommand } from './catalog.command.ts';
import { DEFAULT_URL, resolveConfig } from './cli-config.ts';
import { OPTIONS } from './cli-options.ts';
import { INSTANCES_USAGE, instancesCommand } from './instances.command.ts';
import { JOBS_USAGE, jobsCommand } from './jobs.command.ts';
import { KEYS_USAGE, keysCommand } from './keys.command.ts';
import { LOGIN_USAGE, loginCommand } from './login.command.ts';
import { MIGRATE_USAGE, migrateCommand } from './migrate.command.ts';
import { SCHEDULES_USAGE, schedulesCommand } from './schedules.command.ts';
import { TOKENS_USAGE, tokensCommand } from './tokens.command.ts';
import { VERIFY_USAGE, verifyCommand } from './verify.command.ts';

const USAGE = `usage: cairn [--url URL] [--token TOKEN] [--json] <command> [options]

Which Cairn: --url and --token, else the CAIRN_URL and CAIRN_TOKEN variables, else what
cairn login saved, else ${DEFAULT_URL} with the all-in-one's .cairn/admin-token (current directory).
<instance> is an instance id or its name (tenant/name when several tenants have that name).
--json prints the API's JSON instead of tables and messages.
Exit codes: 0 done; 1 the API refused (its message on stderr) or the job failed; 2 bad usage or
configuration; 3 Cairn cannot be reached; 130 Ctrl-C (a job being waited for keeps running).

Setup
${LOGIN_USAGE}
  apply -f FILE [--dry-run] [--prune]            make instances (volumes, excludes, hooks, policy) and their schedules
                                                 match a YAML file (examples/cairn.yaml); --dry-run prints the
                                                 changes and makes none; --prune also deletes schedules not in the file

Nodes and instances
${INSTANCES_USAGE}

Backups
${BACKUPS_USAGE}
${VERIFY_USAGE}
${MIGRATE_USAGE}

Schedules
${SCHEDULES_USAGE}

Jobs
${JOBS_USAGE}

Admin
${TOKENS_USAGE}
${CATALOG_USAGE}
${KEYS_USAGE}`;

const BACKUP_COMMANDS = new Set(['backup', 'backups', 'show', 'name', 'note', 'pin', 'unpin', 'policy', 'files', 'download', 'restore', 'delete']);

async function run(argv: string[]): Promise<number> {
  const { values: o, positionals } = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
  const [command, ...args] = positionals;
  if (o.help || !command || command === 'help') {
    console.log(USAGE);
    return command || o.help ? 0 : 2;
  }
  if (command === 'login' || command === 'logout' || command === 'config') return loginCommand(command, o);
  const { url, token } = resolveConfig(o);
  const client = new CairnClient(url, token);
  const usage = (message: string) => new UsageError(message);
  const wait = !o['no-wait'];
  if (BACKUP_COMMANDS.has(command)) return backupsCommand(client, command, args, o);
  switch (command) {
    case 'nodes':
    case 'instances':
    case 'register':
    case 'coverage':
      return instancesCommand(client, command, args, o);
    case 'schedules':
    case 'schedule':
      return schedulesCommand(client, command, args, o);
    case 'jobs':
    case 'job':
    case 'cancel':
      return jobsCommand(client, command, args, o);
    case 'tokens':
      return tokensCommand(client, args, o);
    case 'apply': {
      // Loaded only here: the file's checks bring the API's schemas (zod, cron) along.
      const { applyCommand } = await import('./apply.command.ts');
      return applyCommand(client, o);
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
          json: o.json,
        },
        usage,
      );
    case 'keys':
      return keysCommand(client, { sub: args[0], dryRun: o['dry-run'], json: o.json }, usage);
    case 'catalog':
      return catalogCommand(client, { sub: args[0], dryRun: o['dry-run'], json: o.json }, usage);
    case 'verify':
      return verifyCommand(client, { backup: args[0], level: o.level, samplePercent: o['sample-percent'], wait, json: o.json }, usage);
    default:
      throw new UsageError(`unknown command ${command} (cairn --help lists them)`);
  }
}

/** The error as stderr lines and the exit code (see USAGE). */
function report(err: unknown): number {
  const code = (err as { code?: string }).code;
  if (err instanceof UsageError || (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS'))) {
    console.error(`cairn: ${(err as Error).message}\n(cairn --help lists the commands and their options)`);
    return 2;
  }
  if (err instanceof ApiError) {
    const details = Array.isArray(err.details)
      ? err.details.map((d: { path?: string; message?: string }) => `\n  ${d.path ?? ''}: ${d.message ?? ''}`).join('')
      : '';
    console.error(`cairn: ${err.message}${details}`);
    return err.code === 'unreachable' ? 3 : 1;
  }
  console.error(`cairn: ${(err as Error).message ?? String(err)}`);
  return 1;
}

run(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => process.exit(report(err)),
);
