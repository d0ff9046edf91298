import { useState } from 'preact/hooks';
import { api, download, query } from '../api.ts';
import { CancelButton, ErrorBox, JobProgressView, Loading, NotShown, Section, StatusBadge, useLoad } from '../components.tsx';
import { formatAge, formatBytes, formatTime, formatWarning } from '../format.ts';
import { ACTIVE_JOB, type Backup, type Instance, type Job, type Page } from '../types.ts';
import { CoverageList, loadSummary } from './instances.tsx';
import { SchedulesSection } from './schedules.tsx';

/** One instance: coverage, "Back up now" with live progress, its backups, schedules and jobs. */
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
    <div class="table-wrap">
      <ErrorBox error={error} />
      <table class="responsive">
        <caption class="sr-only">Backups, newest first</caption>
        <thead>
          <tr>
            <th scope="col">Created</th>
            <th scope="col">Status</th>
            <th scope="col">Kind</th>
            <th scope="col">Size</th>
            <th scope="col">Name</th>
            <th scope="col">Warnings</th>
            <th scope="col">Actions</th>
          </tr>
        </thead>
        <tbody>
          {backups.map((b) => (
            <tr key={b.id} data-backup-id={b.id}>
              <th scope="row">
                {formatTime(b.createdAt)}
                <div class="muted small">
                  {b.id} · {b.trigger}
                </div>
              </th>
              <td data-label="Status">
                <StatusBadge status={b.status} />
                {b.error ? <div class="error-text small">{b.error}</div> : null}
              </td>
              <td data-label="Kind">{b.kind}</td>
              <td data-label="Size">
                {formatBytes(b.storedBytes)}
                {b.logicalBytes !== null ? <div class="muted small">{formatBytes(b.logicalBytes)} of files</div> : null}
              </td>
              <td data-label="Name">
                {b.name ?? <span class="muted">—</span>}
                {b.pinned ? <span class="badge pinned">pinned</span> : null}
                {b.note ? <div class="muted small">{b.note}</div> : null}
              </td>
              <td data-label="Warnings">
                {b.warnings.length ? (
                  <ul class="warnings">
                    {b.warnings.map((w, i) => (
                      <li key={i}>{formatWarning(w)}</li>
                    ))}
                  </ul>
                ) : (
                  <span class="muted">none</span>
                )}
              </td>
              <td data-label="Actions">
                {b.status === 'completed' ? (
                  <div class="row-actions">
                    <a class="button secondary" href={`#/backups/${encodeURIComponent(b.id)}`}>
                      Browse and restore
                    </a>
                    <button
                      type="button"
                      class="secondary"
                      onClick={() => download(b.id).then(() => setError(null), setError)}
                      aria-label={`Download backup ${b.name ?? b.id}`}
                    >
                      Download
                    </button>
                  </div>
                ) : null}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

export function JobsTable({ jobs, onChange, showInstance }: { jobs: Job[]; onChange: () => void; showInstance?: boolean }) {
  const [watching, setWatching] = useState<string | null>(null);
  if (jobs.length === 0) return <p class="muted">No jobs.</p>;
  return (
    <div class="table-wrap">
      <table class="responsive">
        <caption class="sr-only">Jobs, newest first</caption>
        <thead>
          <tr>
            <th scope="col">Created</th>
            <th scope="col">Type</th>
            <th scope="col">Status</th>
            {showInstance ? <th scope="col">Instance</th> : null}
            <th scope="col">Progress</th>
            <th scope="col">Actions</th>
          </tr>
        </thead>
        <tbody>
          {jobs.map((j) => (
            <tr key={j.id} data-job-id={j.id}>
              <th scope="row">
                {formatTime(j.createdAt)}
                <div class="muted small">{j.id}</div>
              </th>
              <td data-label="Type">{j.type}</td>
              <td data-label="Status">
                <StatusBadge status={j.status} />
                {j.error ? (
                  <div class="error-text small">
                    {j.errorCode ? `${j.errorCode}: ` : ''}
                    {j.error}
                  </div>
                ) : null}
              </td>
              {showInstance ? (
                <td data-label="Instance">{j.instanceId ? <a href={`#/instances/${encodeURIComponent(j.instanceId)}`}>{j.instanceId}</a> : '—'}</td>
              ) : null}
              <td data-label="Progress">
                {watching === j.id ? (
                  <JobProgressView jobId={j.id} label={`${j.type} job`} onEnd={onChange} />
                ) : j.progress ? (
                  `${j.progress.stage} ${Math.round(j.progress.percent)}%`
                ) : (
                  '—'
                )}
              </td>
              <td data-label="Actions">
                {ACTIVE_JOB.has(j.status) ? (
                  <div class="row-actions">
                    {watching !== j.id ? (
                      <button type="button" class="secondary" onClick={() => setWatching(j.id)}>
                        Follow
                      </button>
                    ) : null}
                    <CancelButton job={j} onDone={onChange} />
                  </div>
                ) : null}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
