import { useState } from 'preact/hooks';
import { api, query } from '../api.ts';
import { ErrorBox, Loading, useLoad } from '../components.tsx';
import { formatAge, formatTime } from '../format.ts';
import type { Backup, Coverage, Instance, Page, Schedule } from '../types.ts';

export interface InstanceSummary {
  coverage: Coverage;
  lastSuccess: Backup | null;
  nextRun: string | null;
}

/** Coverage, the newest completed backup and the earliest next scheduled run of one instance. */
export async function loadSummary(id: string): Promise<InstanceSummary> {
  const enc = encodeURIComponent(id);
  const [coverage, backups, schedules] = await Promise.all([
    api<Coverage>('GET', `/v1/instances/${enc}/coverage`),
    api<Page<Backup>>('GET', `/v1/instances/${enc}/backups${query({ status: 'completed', limit: 1 })}`),
    api<Page<Schedule>>('GET', `/v1/instances/${enc}/schedules${query({ limit: 500 })}`),
  ]);
  const runs = schedules.items
    .map((s) => s.nextRunAt)
    .filter((t): t is string => !!t)
    .sort();
  return { coverage, lastSuccess: backups.items[0] ?? null, nextRun: runs[0] ?? null };
}

export function CoverageList({ coverage }: { coverage: Coverage }) {
  return (
    <ul class="coverage">
      {coverage.volumes.map((v) => (
        <li key={v.name} class={v.covered ? 'covered' : 'skipped'}>
          <span aria-hidden="true">{v.covered ? '✔' : '✖'}</span> <strong>{v.name}</strong>{' '}
          {v.covered ? 'backed up' : `skipped: ${v.reason ?? 'no reason given'}`}
        </li>
      ))}
      {coverage.warnings.map((w) => (
        <li key={w} class="warning">
          <span aria-hidden="true">⚠</span> {w}
        </li>
      ))}
    </ul>
  );
}

function InstanceRow({ instance }: { instance: Instance }) {
  const summary = useLoad(() => loadSummary(instance.id), [instance.id]);
  const s = summary.data;
  return (
    <tr>
      <th scope="row">
        <a href={`#/instances/${encodeURIComponent(instance.id)}`}>{instance.name}</a>
        <div class="muted small">{instance.id}</div>
      </th>
      <td data-label="Tenant">{instance.tenant}</td>
      <td data-label="Node">{instance.nodeId}</td>
      <td data-label="Coverage">{s ? <CoverageList coverage={s.coverage} /> : summary.error ? <ErrorBox error={summary.error} /> : '…'}</td>
      <td data-label="Last successful backup">
        {s ? (
          s.lastSuccess ? (
            <>
              {formatTime(s.lastSuccess.completedAt ?? s.lastSuccess.createdAt)}
              <div class="muted small">{formatAge(s.lastSuccess.completedAt ?? s.lastSuccess.createdAt)}</div>
            </>
          ) : (
            <span class="warning-text">never</span>
          )
        ) : (
          '…'
        )}
      </td>
      <td data-label="Next scheduled run">
        {s ? (
          s.nextRun ? (
            <>
              {formatTime(s.nextRun)}
              <div class="muted small">{formatAge(s.nextRun)}</div>
            </>
          ) : (
            <span class="muted">no schedule</span>
          )
        ) : (
          '…'
        )}
      </td>
    </tr>
  );
}

/** The token's instances (every tenant's for an admin), with coverage, last success and next run. */
export function InstancesPage() {
  const [pages, setPages] = useState<string[]>(['']);
  const [filter, setFilter] = useState({ tenant: '', node: '' });
  const [draft, setDraft] = useState(filter);
  return (
    <>
      <h1>Instances</h1>
      <form
        class="inline-form"
        aria-label="Filter instances"
        onSubmit={(e) => {
          e.preventDefault();
          setFilter({ tenant: draft.tenant.trim(), node: draft.node.trim() });
          setPages(['']);
        }}
      >
        <div class="field">
          <label for="filter-tenant">Tenant</label>
          <input id="filter-tenant" value={draft.tenant} onInput={(e) => setDraft({ ...draft, tenant: (e.target as HTMLInputElement).value })} />
        </div>
        <div class="field">
          <label for="filter-node">Node</label>
          <input id="filter-node" value={draft.node} onInput={(e) => setDraft({ ...draft, node: (e.target as HTMLInputElement).value })} />
        </div>
        <button type="submit" class="secondary">
          Filter
        </button>
      </form>
      <div class="table-wrap">
        <table class="responsive">
          <caption class="sr-only">Instances with their coverage, last successful backup and next scheduled run</caption>
          <thead>
            <tr>
              <th scope="col">Instance</th>
              <th scope="col">Tenant</th>
              <th scope="col">Node</th>
              <th scope="col">Coverage</th>
              <th scope="col">Last successful backup</th>
              <th scope="col">Next scheduled run</th>
            </tr>
          </thead>
          {pages.map((cursor, i) => (
            <InstanceListPage
              key={`${filter.tenant}|${filter.node}|${cursor}`}
              filter={filter}
              cursor={cursor}
              last={i === pages.length - 1}
              onMore={(next) => setPages([...pages, next])}
            />
          ))}
        </table>
      </div>
    </>
  );
}

function InstanceListPage({
  filter,
  cursor,
  last,
  onMore,
}: {
  filter: { tenant: string; node: string };
  cursor: string;
  last: boolean;
  onMore: (cursor: string) => void;
}) {
  const list = useLoad(() => api<Page<Instance>>('GET', `/v1/instances${query({ tenant: filter.tenant, node: filter.node, cursor, limit: 50 })}`), [cursor]);
  if (!list.data)
    return (
      <tbody>
        <tr>
          <td colSpan={6}>{list.error ? <ErrorBox error={list.error} /> : <Loading what="instances" />}</td>
        </tr>
      </tbody>
    );
  return (
    <tbody>
      {list.data.items.length === 0 && cursor === '' ? (
        <tr>
          <td colSpan={6} class="muted">
            No instances yet. Register one with POST /v1/instances (see the README).
          </td>
        </tr>
      ) : null}
      {list.data.items.map((i) => (
        <InstanceRow key={i.id} instance={i} />
      ))}
      {last && list.data.nextCursor ? (
        <tr>
          <td colSpan={6}>
            <button type="button" class="secondary" onClick={() => onMore(list.data!.nextCursor!)}>
              More instances
            </button>
          </td>
        </tr>
      ) : null}
    </tbody>
  );
}
