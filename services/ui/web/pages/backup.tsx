import { useEffect, useState } from 'preact/hooks';
import { ApiError, api, download, query, watchJob } from '../api.ts';
import { ConfirmDialog, DataTable, ErrorBox, JobProgressView, Loading, NotShown, Section, StatusBadge, useLoad } from '../components.tsx';
import { formatBytes, formatTime, formatWarning } from '../format.ts';
import type { Backup, FileEntry, FileList, Instance, Job, Page, RestoreChanges, RestoreDryRun } from '../types.ts';

/** A backup: its facts, its files by directory (download whole or one path), and restore. */
export function BackupPage({ id }: { id: string }) {
  const enc = encodeURIComponent(id);
  const backup = useLoad(() => api<Backup>('GET', `/v1/backups/${enc}`), [id]);
  const [selected, setSelected] = useState<string[]>([]);
  const [error, setError] = useState<unknown>(null);
  if (!backup.data) return backup.error ? <NotShown title="Backup" error={backup.error} /> : <Loading what="the backup" />;
  const b = backup.data;
  return (
    <>
      <p class="crumbs">
        <a href="#/instances">Instances</a> / <a href={`#/instances/${encodeURIComponent(b.instanceId)}`}>{b.instanceId}</a> / <span>{b.name ?? b.id}</span>
      </p>
      <h1>Backup {b.name ?? b.id}</h1>
      <dl class="facts">
        <dt>Status</dt>
        <dd>
          <StatusBadge status={b.status} />
        </dd>
        <dt>Kind</dt>
        <dd>
          {b.kind}
          {b.parentId ? ` (on ${b.parentId})` : ''}
        </dd>
        <dt>Created</dt>
        <dd>{formatTime(b.createdAt)}</dd>
        <dt>Size</dt>
        <dd>
          {formatBytes(b.storedBytes)} stored, {formatBytes(b.logicalBytes)} of files, {b.fileCount ?? '—'} files
        </dd>
        <dt>Volumes</dt>
        <dd>{b.volumes.join(', ')}</dd>
        <dt>Pinned</dt>
        <dd>{b.pinned ? 'yes: never expired by retention, deletion refused until unpinned' : 'no'}</dd>
        {b.note ? (
          <>
            <dt>Note</dt>
            <dd class="note">{b.note}</dd>
          </>
        ) : null}
        <dt>Verified</dt>
        <dd data-testid="backup-verify">
          {b.verifiedAt ? (
            <>
              <StatusBadge status={b.verifyStatus ?? 'unknown'} /> {b.verifyLevel} check, {formatTime(b.verifiedAt)}
              {b.verifyError ? <div class="error-text small">{b.verifyError}</div> : null}
            </>
          ) : (
            <span class="muted">never</span>
          )}
        </dd>
        {b.warnings.length ? (
          <>
            <dt>Warnings</dt>
            <dd>
              <ul class="warnings">
                {b.warnings.map((w, i) => (
                  <li key={i}>{formatWarning(w)}</li>
                ))}
              </ul>
            </dd>
          </>
        ) : null}
      </dl>
      <p>
        <button type="button" onClick={() => download(b.id).then(() => setError(null), setError)}>
          Download the whole backup
        </button>
      </p>
      <ErrorBox error={error} />
      {b.status !== 'deleting' && b.status !== 'deleted' ? <BackupEditor key={`${b.name}|${b.note}|${b.pinned}`} backup={b} onSaved={backup.reload} /> : null}
      {b.status === 'completed' ? (
        <>
          <FileBrowser backupId={b.id} selected={selected} onSelect={setSelected} />
          <RestorePanel backup={b} selected={selected} />
        </>
      ) : (
        <p class="muted">Only a completed backup can be browsed and restored.</p>
      )}
    </>
  );
}

function baseName(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

function FileBrowser({ backupId, selected, onSelect }: { backupId: string; selected: string[]; onSelect: (paths: string[]) => void }) {
  const [prefix, setPrefix] = useState('');
  const [items, setItems] = useState<FileEntry[]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [loading, setLoading] = useState(true);

  const load = async (at: string, after: string | null) => {
    setLoading(true);
    setError(null);
    try {
      const page = await api<FileList>(
        'GET',
        `/v1/backups/${encodeURIComponent(backupId)}/files${query({ prefix: at, recursive: 'false', cursor: after ?? undefined, limit: 500 })}`,
      );
      setItems((prev) => (after ? [...prev, ...page.items] : page.items));
      setCursor(page.nextCursor);
    } catch (err) {
      setError(err);
      if (!after) setItems([]);
    } finally {
      setLoading(false);
    }
  };
  useEffect(() => {
    void load(prefix, null);
  }, [backupId, prefix]);

  const crumbs = prefix ? prefix.split('/') : [];
  const toggle = (path: string, on: boolean) => onSelect(on ? [...selected.filter((p) => p !== path), path] : selected.filter((p) => p !== path));
  return (
    <Section title="Files" id="files-title">
      <nav aria-label="Directory" class="crumbs">
        <button type="button" class="link" onClick={() => setPrefix('')} aria-current={prefix === '' ? 'location' : undefined}>
          All volumes
        </button>
        {crumbs.map((c, i) => {
          const path = crumbs.slice(0, i + 1).join('/');
          return (
            <span key={path}>
              {' / '}
              <button type="button" class="link" onClick={() => setPrefix(path)} aria-current={path === prefix ? 'location' : undefined}>
                {c}
              </button>
            </span>
          );
        })}
      </nav>
      <ErrorBox error={error} />
      <DataTable
        class="files"
        caption={`Entries of ${prefix || 'the backup'}`}
        busy={loading}
        rows={items}
        rowKey={(e) => e.path}
        rowData={(e) => ({ path: e.path })}
        empty={!loading && !error ? 'Empty directory.' : undefined}
        columns={[
          {
            header: 'Select',
            cell: (e) => (
              <input
                type="checkbox"
                id={`sel-${e.path}`}
                checked={selected.includes(e.path)}
                onChange={(ev) => toggle(e.path, (ev.target as HTMLInputElement).checked)}
                aria-label={`Select ${e.path} for restore`}
              />
            ),
          },
          {
            header: 'Name',
            rowHeader: true,
            cell: (e) => (
              <>
                {e.type === 'dir' ? (
                  <button type="button" class="link" onClick={() => setPrefix(e.path)} aria-label={`Open directory ${e.path}`}>
                    {baseName(e.path)}/
                  </button>
                ) : (
                  <span>{baseName(e.path)}</span>
                )}
                {e.linkTarget ? <span class="muted small"> → {e.linkTarget}</span> : null}
              </>
            ),
          },
          { header: 'Type', cell: (e) => e.type },
          { header: 'Size', cell: (e) => (e.type === 'dir' ? '' : formatBytes(e.size)) },
          { header: 'Modified', cell: (e) => formatTime(e.mtime) },
          {
            header: 'Download',
            cell: (e) => (
              <button
                type="button"
                class="secondary"
                onClick={() => download(backupId, e.path).then(() => setError(null), setError)}
                aria-label={`Download ${e.path}`}
              >
                Download
              </button>
            ),
          },
        ]}
      />
      {cursor ? (
        <button type="button" class="secondary" onClick={() => load(prefix, cursor)}>
          More entries
        </button>
      ) : null}
      {selected.length ? (
        <p role="status">
          Selected for restore: {selected.join(', ')}{' '}
          <button type="button" class="link" onClick={() => onSelect([])}>
            Clear selection
          </button>
        </p>
      ) : null}
    </Section>
  );
}

/** Name, note and pin of a backup (PATCH /v1/backups/:id); the API's refusals (a taken name...) shown as it states them. */
function BackupEditor({ backup, onSaved }: { backup: Backup; onSaved: () => void }) {
  const [name, setName] = useState(backup.name ?? '');
  const [note, setNote] = useState(backup.note ?? '');
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const save = async (changes: Record<string, unknown>) => {
    setBusy(true);
    setError(null);
    try {
      await api('PATCH', `/v1/backups/${encodeURIComponent(backup.id)}`, changes);
      onSaved();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <Section title="Name, note and pin" id="edit-title">
      <form
        onSubmit={(e) => {
          e.preventDefault();
          void save({ name: name.trim() || null, note: note.trim() || null });
        }}
      >
        <div class="inline-form">
          <div class="field">
            <label for="edit-name">Name</label>
            <input id="edit-name" value={name} maxLength={100} onInput={(e) => setName((e.target as HTMLInputElement).value)} />
          </div>
          <div class="field grow">
            <label for="edit-note">Note</label>
            <textarea id="edit-note" rows={2} value={note} onInput={(e) => setNote((e.target as HTMLTextAreaElement).value)} />
          </div>
        </div>
        <div class="actions">
          <button type="submit" disabled={busy}>
            Save name and note
          </button>
          <button type="button" class="secondary" disabled={busy} onClick={() => save({ pinned: !backup.pinned })}>
            {backup.pinned ? 'Unpin' : 'Pin'}
          </button>
        </div>
        <ErrorBox error={error} />
      </form>
    </Section>
  );
}

const CHANGE_KINDS: { key: keyof RestoreChanges['samples']; verb: string }[] = [
  { key: 'deleted', verb: 'deleted' },
  { key: 'changed', verb: 'changed' },
  { key: 'created', verb: 'created' },
];

/** A dry run's answer: how many entries the restore creates, changes, deletes and leaves, with sample paths of each. */
function DryRunSummary({ run }: { run: RestoreDryRun }) {
  const c = run.changes;
  return (
    <div class="dry-run" data-testid="restore-dry-run" aria-live="polite">
      <h3>What the restore would do</h3>
      <p data-testid="restore-dry-run-counts">
        <strong class={c.deleted ? 'error-text' : ''}>{c.deleted} deleted</strong>, {c.changed} changed, {c.created} created, {c.unchanged} unchanged (
        {formatBytes(run.bytesToWrite)} to write)
      </p>
      {CHANGE_KINDS.filter((k) => c.samples[k.key].length).map((k) => (
        <details key={k.key} open={k.key === 'deleted'}>
          <summary>
            {k.verb === 'deleted' ? 'Deleted' : k.verb === 'changed' ? 'Changed' : 'Created'}: {c[k.key]}
          </summary>
          <ul class="paths">
            {c.samples[k.key].map((p) => (
              <li key={p}>
                <code>{p}</code>
              </li>
            ))}
            {c[k.key] > c.samples[k.key].length ? <li class="muted">… and {c[k.key] - c.samples[k.key].length} more</li> : null}
          </ul>
        </details>
      ))}
      {run.notes.map((n) => (
        <p key={n} class="muted small">
          {n}
        </p>
      ))}
    </div>
  );
}

/**
 * Runs a restore's dry run (the same request with `dryRun: true`) and follows its job to the end:
 * the answer, the job's own error, or the API's refusal of the request.
 */
function useDryRun(backupId: string, body: Record<string, unknown> | null): { run: RestoreDryRun | null; error: unknown; pending: boolean } {
  const [state, setState] = useState<{ run: RestoreDryRun | null; error: unknown; pending: boolean }>({ run: null, error: null, pending: false });
  const key = body ? JSON.stringify(body) : null;
  useEffect(() => {
    if (!body) return;
    const abort = new AbortController();
    setState({ run: null, error: null, pending: true });
    (async () => {
      const { job } = await api<{ job: Job }>('POST', `/v1/backups/${encodeURIComponent(backupId)}/restore`, { ...body, dryRun: true });
      const last = (await watchJob(job.id, () => {}, abort.signal)) ?? job;
      if (last.status !== 'succeeded') throw new ApiError(0, last.errorCode ?? last.status, last.error ?? `the dry run ended ${last.status}`);
      return last.result as RestoreDryRun;
    })().then(
      (run) => !abort.signal.aborted && setState({ run, error: null, pending: false }),
      (error: unknown) => !abort.signal.aborted && setState({ run: null, error, pending: false }),
    );
    return () => abort.abort();
  }, [backupId, key]);
  return state;
}

function RestorePanel({ backup, selected }: { backup: Backup; selected: string[] }) {
  const instances = useLoad(() => api<Page<Instance>>('GET', `/v1/instances${query({ limit: 500 })}`), []);
  const [what, setWhat] = useState<'whole' | 'paths'>('whole');
  const [target, setTarget] = useState(backup.instanceId);
  const [mode, setMode] = useState<'replace' | 'merge'>('replace');
  const [confirming, setConfirming] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [job, setJob] = useState<Job | null>(null);
  const [restoring, setRestoring] = useState(false);

  useEffect(() => {
    if (!selected.length && what === 'paths') setWhat('whole');
  }, [selected, what]);

  const all = instances.data?.items ?? [];
  const targetInstance = all.find((i) => i.id === target);
  const paths = what === 'paths' ? selected : [];
  const body = {
    ...(target !== backup.instanceId ? { targetInstanceId: target } : {}),
    ...(paths.length ? { paths } : {}),
    mode,
  };
  const targetName = targetInstance ? `${targetInstance.name} (${targetInstance.id})` : target;
  const hostPath = (volume: string) => targetInstance?.volumes.find((v) => v.name === volume)?.hostPath;

  const dryRun = useDryRun(backup.id, confirming ? body : null);
  const open = () => {
    setError(null);
    setConfirming(true);
  };
  const start = async () => {
    setConfirming(false);
    try {
      const res = await api<{ job: Job }>('POST', `/v1/backups/${encodeURIComponent(backup.id)}/restore`, body);
      setJob(res.job);
      setRestoring(true);
    } catch (err) {
      setError(err);
    }
  };

  return (
    <Section title="Restore" id="restore-title">
      <form
        onSubmit={(e) => {
          e.preventDefault();
          void open();
        }}
      >
        <fieldset>
          <legend>What to restore</legend>
          <div class="field check">
            <input type="radio" id="what-whole" name="what" checked={what === 'whole'} onChange={() => setWhat('whole')} />
            <label for="what-whole">The whole backup ({backup.volumes.join(', ')})</label>
          </div>
          <div class="field check">
            <input type="radio" id="what-paths" name="what" disabled={!selected.length} checked={what === 'paths'} onChange={() => setWhat('paths')} />
            <label for="what-paths">The selected paths ({selected.length ? selected.join(', ') : 'select files or directories above'})</label>
          </div>
        </fieldset>
        <div class="inline-form">
          <div class="field">
            <label for="restore-target">Into instance</label>
            <select id="restore-target" value={target} onChange={(e) => setTarget((e.target as HTMLSelectElement).value)}>
              {!all.some((i) => i.id === backup.instanceId) ? <option value={backup.instanceId}>{backup.instanceId} (its own instance)</option> : null}
              {all.map((i) => (
                <option key={i.id} value={i.id}>
                  {i.name} ({i.tenant}){i.id === backup.instanceId ? ' — its own instance' : ''}
                </option>
              ))}
            </select>
          </div>
          <div class="field">
            <label for="restore-mode">Mode</label>
            <select id="restore-mode" value={mode} onChange={(e) => setMode((e.target as HTMLSelectElement).value as 'replace' | 'merge')}>
              <option value="replace">replace: becomes exactly the backup</option>
              <option value="merge">merge: write over what is there</option>
            </select>
          </div>
        </div>
        <button type="submit" class="danger" disabled={restoring}>
          Restore…
        </button>
      </form>
      <ErrorBox error={error} />
      {confirming ? (
        <ConfirmDialog title={`Restore into ${targetName}?`} confirmLabel="Restore now" onConfirm={start} onClose={() => setConfirming(false)}>
          <p>
            Backup <strong>{backup.name ?? backup.id}</strong> of {formatTime(backup.createdAt)} will be written into instance <strong>{targetName}</strong>.
          </p>
          <p>
            {mode === 'replace'
              ? 'This will be replaced (files that are not in the backup are deleted):'
              : 'Files of the backup are written over these (nothing is deleted):'}
          </p>
          <ul class="replaced" data-testid="restore-replaces">
            {paths.length
              ? paths.map((p) => {
                  const volume = p.split('/')[0]!;
                  const root = hostPath(volume);
                  return (
                    <li key={p}>
                      <code>{p}</code>
                      {root ? (
                        <>
                          {' '}
                          on the host: <code>{`${root}${p.slice(volume.length)}`}</code>
                        </>
                      ) : null}
                    </li>
                  );
                })
              : backup.volumes.map((v) => (
                  <li key={v}>
                    volume <code>{v}</code>
                    {hostPath(v) ? (
                      <>
                        {' '}
                        at <code>{hostPath(v)}</code>
                      </>
                    ) : null}
                  </li>
                ))}
          </ul>
          {dryRun.pending ? (
            <p role="status" class="muted" data-testid="restore-dry-run-pending">
              Comparing the backup with {targetName} (a dry run: nothing is changed)…
            </p>
          ) : null}
          {dryRun.run ? <DryRunSummary run={dryRun.run} /> : null}
          {dryRun.error ? (
            <>
              <p>The dry run could not tell what would change:</p>
              <ErrorBox error={dryRun.error} />
            </>
          ) : null}
        </ConfirmDialog>
      ) : null}
      {job ? <JobProgressView key={job.id} jobId={job.id} label={`Restore into ${targetName}`} onEnd={() => setRestoring(false)} /> : null}
    </Section>
  );
}
