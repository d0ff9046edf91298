import type { CairnClient } from './api-client.ts';

/** `cairn catalog rebuild [--dry-run]` (issue 14, restore from the bucket alone). */
export const CATALOG_USAGE = `  catalog rebuild [--dry-run] [--json]           recreate lost instance and backup records from the bucket (admin);
                                                 --dry-run: report what would be created, write nothing`;

interface Item {
  id: string;
  outcome: string;
  reason?: string;
  name?: string;
  tenant?: string;
  instanceId?: string;
  source?: string;
}
interface Tally {
  created: number;
  existing: number;
  skipped: number;
  items: Item[];
  truncated: boolean;
}
interface Report {
  dryRun: boolean;
  objectsScanned: number;
  tenants: { created: string[]; existing: number };
  nodes: { created: string[]; existing: number };
  instances: Tally;
  backups: Tally;
  references: { created: number };
}

/** The report as a few lines: counts, then every skipped item with its reason. Exit 0, or 1 when something could not be rebuilt. */
export async function catalogCommand(
  client: CairnClient,
  a: { sub: string | undefined; dryRun: boolean; json: boolean },
  usage: (message: string) => Error,
): Promise<number> {
  if (a.sub !== 'rebuild') throw usage(a.sub ? `unknown catalog command ${a.sub}` : 'missing catalog command (rebuild)');
  const report = await client.request<Report>('POST', '/v1/admin/catalog/rebuild', { dryRun: a.dryRun });
  if (a.json) {
    console.log(JSON.stringify(report, null, 2));
    return report.instances.skipped + report.backups.skipped ? 1 : 0;
  }
  const verb = report.dryRun ? 'would create' : 'created';
  console.log(`${report.dryRun ? 'dry run: ' : ''}${report.objectsScanned} objects scanned`);
  console.log(`tenants:   ${verb} ${report.tenants.created.length}${report.tenants.created.length ? ` (${report.tenants.created.join(', ')})` : ''}`);
  if (report.nodes.created.length) console.log(`nodes:     ${verb} ${report.nodes.created.length} unseen (${report.nodes.created.join(', ')})`);
  for (const [label, t] of [
    ['instances', report.instances],
    ['backups', report.backups],
  ] as const) {
    console.log(`${`${label}:`.padEnd(10)} ${verb} ${t.created}, existing ${t.existing}, skipped ${t.skipped}`);
    for (const i of t.items.filter((x) => x.outcome === 'skipped'))
      console.log(`  skipped ${i.id}${i.instanceId ? ` (instance ${i.instanceId})` : ''}: ${i.reason}`);
    if (t.truncated) console.log(`  (more ${label} than the report lists)`);
  }
  console.log(`references: ${verb} ${report.references.created}`);
  return report.instances.skipped + report.backups.skipped ? 1 : 0;
}
