import { useState } from 'preact/hooks';
import { api, download, query } from '../api.ts';
import { CancelButton, DataTable, ErrorBox, JobProgressView, Loading, NotShown, Section, StatusBadge, useLoad } from '../components.tsx';
import { formatAge, formatBytes, formatTime, formatWarning } from '../format.ts';
import { ACTIVE_JOB, type Backup, type Instance, type Job, type Page } from '../types.ts';
import { InstanceHooksSection } from './instance-hooks.tsx';
import { InstancePolicySection } from './instance-policy.tsx';
import { CoverageList, loadSummary } from './instances.tsx';
import { SchedulesSection } from './schedules.tsx';

/** One instance: coverage, "Back up now" with live progress, its backups, schedules, policy, hooks and jobs. */
export function InstancePage({ id }: { id: string }) {
  const enc = encodeURIComponent(id);
  const instance = useLoad(() => api<Instance>('GET', `/v1/instances/${enc}`), [id]);
  const summary = useLoad(() => loadSummary(id), [id]);
  const backups = useLoad(() => api<Page<Backup>>('GET', `/v1/instances/${enc}/backups${query({ limit: 100 })}`), [id]);
  const jobs = useLoad(() => api<Page<Job>>('GET', `/v1/jobs${query({ instance: id, limit: 20 })}`), [id]);
  const [running, setRunning] = useState<{ jobId: string; backupId: string; ended: boolean } | null>(null);

  if (!instance.data) return instance.error ? <NotShown title="Instance" error={instance.error} /> : <Loading what="the instance" />;
  const inst = instance.data;
  const refresh = () => {
    summary.reload();
    backups.reload();
    jobs.reload();
  };
  return (
    <>
      <p class="crumbs">
        <a href="#/instances">Instances</a> / <span>{inst.name}</span>
      </p>
      <h1>{inst.name}</h1>
      <dl class="facts">
        <dt>Id</dt>
        <dd>{inst.id}</dd>
        <dt>Tenant</dt>
        <dd>{inst.tenant}</dd>
        <dt>Node</dt>
        <dd>
          {inst.nodeId}
          {summary.data ? ` (${summary.data.coverage.node.online ? 'online' : 'offline'})` : ''}
        </dd>
        <dt>Last successful backup</dt>
        <dd>
          {summary.data?.lastSuccess
            ? `${formatTime(summary.data.lastSuccess.completedAt)} (${formatAge(summary.data.lastSuccess.completedAt)})`
            : summary.data
              ? 'never'
              : '…'}
        </dd>
        <dt>Next scheduled run</dt>
        <dd>{summary.data?.nextRun ? `${formatTime(summary.data.nextRun)} (${formatAge(summary.data.nextRun)})` : summary.data ? 'no schedule' : '…'}</dd>
      </dl>

      <Section title="Coverage" id="coverage-title">
        {summary.data ? <CoverageList coverage={summary.data.coverage} /> : <ErrorBox error={summary.error} />}
      </Section>

      <Section title="Back up now" id="backup-now-title">
        <BackupForm
          instanceId={id}
          disabled={running !== null && !running.ended}
          onStarted={(jobId, backupId) => {
            setRunning({ jobId, backupId, ended: false });
            refresh();
          }}
        />
        {running ? (
          <JobProgressView
            key={running.jobId}
            jobId={running.jobId}
            label={`Backup ${running.backupId}`}
            onEnd={() => {
              setRunning((r) => (r ? { ...r, ended: true } : r));
              refresh();
            }}
          />
        ) : null}
      </Section>

      <Section title="Backups" id="backups-title">
        {backups.data ? <BackupsTable backups={backups.data.items} /> : backups.error ? <ErrorBox error={backups.error} /> : <Loading what="backups" />}
      </Section>

      <SchedulesSection instanceId={id} onChange={summary.reload} />

      <InstancePolicySection instanceId={id} />

      <InstanceHooksSection instance={inst} onSaved={instance.reload} />

      <Section
        title="Jobs"
        id="jobs-title"
        actions={
          <button type="button" class="secondary" onClick={jobs.reload}>
            Refresh
          </button>
        }
      >
        {jobs.data ? <JobsTable jobs={jobs.data.items} onChange={jobs.reload} /> : jobs.error ? <ErrorBox error={jobs.error} /> : <Loading what="jobs" />}
      </Section>
    </>
  );
}

function BackupForm({ instanceId, disabled, onStarted }: { instanceId: string; disabled: boolean; onStarted: (jobId: string, backupId: string) => void }) {
  const [kind, setKind] = useState('auto');
  const [name, setName] = useState('');
  const [pinned, setPinned] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  return (
    <form
      class="inline-form"
      onSubmit={async (e) => {
        e.preventDefault();
        setBusy(true);
        setError(null);
        try {
          const body: Record<string, unknown> = { kind };
          if (name.trim()) body.name = name.trim();
          if (pinned) body.pinned = true;
          const res = await api<{ backup: Backup; job: Job }>('POST', `/v1/instances/${encodeURIComponent(instanceId)}/backups`, body);
          onStarted(res.job.id, res.backup.id);
        } catch (err) {
          setError(err);
        } finally {
          setBusy(false);
        }
      }}
    >
      <div class="field">
        <label for="backup-kind">Kind</label>
        <select id="backup-kind" value={kind} onChange={(e) => setKind((e.target as HTMLSelectElement).value)}>
          <option value="auto">auto (incremental when possible)</option>
          <option value="full">full</option>
          <option value="incremental">incremental</option>
        </select>
      </div>
      <div class="field">
        <label for="backup-name">Name (optional)</label>
        <input id="backup-name" value={name} maxLength={100} onInput={(e) => setName((e.target as HTMLInputElement).value)} />
      </div>
      <div class="field check">
        <input id="backup-pinned" type="checkbox" checked={pinned} onChange={(e) => setPinned((e.target as HTMLInputElement).checked)} />
        <label for="backup-pinned">Pin (never expired by retention)</label>
      </div>
      <button type="submit" disabled={busy || disabled}>
        Back up now
      </button>
      <ErrorBox error={error} />
    </form>
  );
}

function BackupsTable({ backups }: { backups: Backup[] }) {
  const [error, setError] = useState<unknown>(null);
  if (backups.length === 0) return <p class="muted">No backups yet.</p>;
  return (
    <>
      <ErrorBox error={error} />
      <DataTable
        caption="Backups, newest first"
        rows={backups}
        rowKey={(b) => b.id}
        rowData={(b) => ({ 'backup-id': b.id })}
        columns={[
          {
            header: 'Created',
            rowHeader: true,
            cell: (b) => (
              <>
                {formatTime(b.createdAt)}
                <div class="muted small">
                  {b.id} · {b.trigger}
                </div>
              </>
            ),
          },
          {
            header: 'Status',
            cell: (b) => (
              <>
                <StatusBadge status={b.status} />
                {b.error ? <div class="error-text small">{b.error}</div> : null}
                {b.verifyStatus ? <div class="small">verify: {b.verifyStatus}</div> : null}
              </>
            ),
          },
          { header: 'Kind', cell: (b) => b.kind },
          {
            header: 'Size',
            cell: (b) => (
              <>
                {formatBytes(b.storedBytes)}
                {b.logicalBytes !== null ? <div class="muted small">{formatBytes(b.logicalBytes)} of files</div> : null}
              </>
            ),
          },
          {
            header: 'Name',
            cell: (b) => (
              <>
                {b.name ?? <span class="muted">—</span>}
                {b.pinned ? <span class="badge pinned">pinned</span> : null}
                {b.note ? <div class="muted small">{b.note}</div> : null}
              </>
            ),
          },
          {
            header: 'Warnings',
            cell: (b) =>
              b.warnings.length ? (
                <ul class="warnings">
                  {b.warnings.map((w, i) => (
                    <li key={i}>{formatWarning(w)}</li>
                  ))}
                </ul>
              ) : (
                <span class="muted">none</span>
              ),
          },
          {
            header: 'Actions',
            cell: (b) => (
              <div class="row-actions">
                <a class="button secondary" href={`#/backups/${encodeURIComponent(b.id)}`}>
                  {b.status === 'completed' ? 'Browse and restore' : 'Details'}
                </a>
                {b.status === 'completed' ? (
                  <button
                    type="button"
                    class="secondary"
                    onClick={() => download(b.id).then(() => setError(null), setError)}
                    aria-label={`Download backup ${b.name ?? b.id}`}
                  >
                    Download
                  </button>
                ) : null}
              </div>
            ),
          },
        ]}
      />
    </>
  );
}

/** A restore's answer: what it created, changed and deleted (a dry run's: what it would). */
function restoreSummary(j: Job): string | null {
  const r = j.result as { dryRun?: boolean; changes?: { created: number; changed: number; deleted: number } } | null;
  if (j.type !== 'restore' || !r?.changes) return null;
  const c = r.changes;
  return r.dryRun
    ? `dry run: would delete ${c.deleted}, change ${c.changed}, create ${c.created}`
    : `deleted ${c.deleted}, changed ${c.changed}, created ${c.created}`;
}

export function JobsTable({ jobs, onChange, showInstance }: { jobs: Job[]; onChange: () => void; showInstance?: boolean }) {
  const [watching, setWatching] = useState<string | null>(null);
  if (jobs.length === 0) return <p class="muted">No jobs.</p>;
  return (
    <DataTable
      caption="Jobs, newest first"
      rows={jobs}
      rowKey={(j) => j.id}
      rowData={(j) => ({ 'job-id': j.id })}
      columns={[
        {
          header: 'Created',
          rowHeader: true,
          cell: (j) => (
            <>
              {formatTime(j.createdAt)}
              <div class="muted small">{j.id}</div>
            </>
          ),
        },
        { header: 'Type', cell: (j) => (j.type === 'restore' && j.params?.dryRun ? 'restore (dry run)' : j.type) },
        {
          header: 'Status',
          cell: (j) => (
            <>
              <StatusBadge status={j.status} />
              {j.error ? (
                <div class="error-text small">
                  {j.errorCode ? `${j.errorCode}: ` : ''}
                  {j.error}
                </div>
              ) : null}
              {restoreSummary(j) ? <div class="small">{restoreSummary(j)}</div> : null}
            </>
          ),
        },
        showInstance && {
          header: 'Instance',
          cell: (j) => (j.instanceId ? <a href={`#/instances/${encodeURIComponent(j.instanceId)}`}>{j.instanceId}</a> : '—'),
        },
        {
          header: 'Progress',
          cell: (j) =>
            watching === j.id ? (
              <JobProgressView jobId={j.id} label={`${j.type} job`} onEnd={onChange} />
            ) : j.progress ? (
              `${j.progress.stage} ${Math.round(j.progress.percent)}%`
            ) : (
              '—'
            ),
        },
        {
          header: 'Actions',
          cell: (j) =>
            ACTIVE_JOB.has(j.status) ? (
              <div class="row-actions">
                {watching !== j.id ? (
                  <button type="button" class="secondary" onClick={() => setWatching(j.id)}>
                    Follow
                  </button>
                ) : null}
                <CancelButton job={j} onDone={onChange} />
              </div>
            ) : null,
        },
      ]}
    />
  );
}
