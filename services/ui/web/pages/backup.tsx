import { useEffect, useState } from 'preact/hooks';
import { api, download, query, restoreRequestFields } from '../api.ts';
import { ConfirmDialog, ErrorBox, JobProgressView, Loading, NotShown, Section, StatusBadge, useLoad } from '../components.tsx';
import { formatBytes, formatTime, formatWarning } from '../format.ts';
import type { Backup, FileEntry, FileList, Instance, Job, Page } from '../types.ts';

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
        {b.pinned ? (
          <>
            <dt>Pinned</dt>
            <dd>yes</dd>
          </>
        ) : null}
        {b.note ? (
          <>
            <dt>Note</dt>
            <dd>{b.note}</dd>
          </>
        ) : null}
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
      <div class="table-wrap">
        <table class="responsive files" aria-busy={loading}>
          <caption class="sr-only">Entries of {prefix || 'the backup'}</caption>
          <thead>
            <tr>
              <th scope="col">Select</th>
              <th scope="col">Name</th>
              <th scope="col">Type</th>
              <th scope="col">Size</th>
              <th scope="col">Modified</th>
              <th scope="col">Download</th>
            </tr>
          </thead>
          <tbody>
            {items.map((e) => (
              <tr key={e.path} data-path={e.path}>
                <td data-label="Select">
                  <input
                    type="checkbox"
                    id={`sel-${e.path}`}
                    checked={selected.includes(e.path)}
                    onChange={(ev) => toggle(e.path, (ev.target as HTMLInputElement).checked)}
                    aria-label={`Select ${e.path} for restore`}
                  />
                </td>
                <th scope="row">
                  {e.type === 'dir' ? (
                    <button type="button" class="link" onClick={() => setPrefix(e.path)} aria-label={`Open directory ${e.path}`}>
                      {baseName(e.path)}/
                    </button>
                  ) : (
                    <span>{baseName(e.path)}</span>
                  )}
                  {e.linkTarget ? <span class="muted small"> → {e.linkTarget}</span> : null}
                </th>
                <td data-label="Type">{e.type}</td>
                <td data-label="Size">{e.type === 'dir' ? '' : formatBytes(e.size)}</td>
                <td data-label="Modified">{formatTime(e.mtime)}</td>
                <td data-label="Download">
                  <button
                    type="button"
                    class="secondary"
                    onClick={() => download(backupId, e.path).then(() => setError(null), setError)}
                    aria-label={`Download ${e.path}`}
                  >
                    Download
                  </button>
                </td>
              </tr>
            ))}
            {!loading && items.length === 0 && !error ? (
              <tr>
                <td colSpan={6} class="muted">
                  Empty directory.
                </td>
              </tr>
            ) : null}
          </tbody>
        </table>
      </div>
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

/** Lists of a restore dry run's answer (created, changed, deleted...), whatever its exact shape. */
function DryRunView({ result }: { result: unknown }) {
  const body = (result && typeof result === 'object' && 'dryRun' in result ? (result as { dryRun: unknown }).dryRun : result) as Record<string, unknown>;
  if (!body || typeof body !== 'object') return null;
  const lists = Object.entries(body).filter(([, v]) => Array.isArray(v)) as [string, unknown[]][];
  if (!lists.length) return null;
  return (
    <div class="dry-run">
      <h3>What the restore would do</h3>
      {lists.map(([k, v]) => (
        <div key={k}>
          <strong>
            {k} ({v.length})
          </strong>
          {v.length ? (
            <ul>
              {v.slice(0, 50).map((x, i) => (
                <li key={i}>{typeof x === 'string' ? x : JSON.stringify(x)}</li>
              ))}
              {v.length > 50 ? <li>… and {v.length - 50} more</li> : null}
            </ul>
          ) : null}
        </div>
      ))}
    </div>
  );
}

function RestorePanel({ backup, selected }: { backup: Backup; selected: string[] }) {
  const instances = useLoad(() => api<Page<Instance>>('GET', `/v1/instances${query({ limit: 500 })}`), []);
  const [what, setWhat] = useState<'whole' | 'paths'>('whole');
  const [target, setTarget] = useState(backup.instanceId);
  const [mode, setMode] = useState<'replace' | 'merge'>('replace');
  const [confirming, setConfirming] = useState(false);
  const [dryRun, setDryRun] = useState<unknown>(null);
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

  const open = async () => {
    setError(null);
    setDryRun(null);
    setConfirming(true);
    if ((await restoreRequestFields()).has('dryRun')) {
      try {
        setDryRun(await api('POST', `/v1/backups/${encodeURIComponent(backup.id)}/restore`, { ...body, dryRun: true }));
      } catch (err) {
        setError(err);
      }
    }
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
          {dryRun ? <DryRunView result={dryRun} /> : null}
        </ConfirmDialog>
      ) : null}
      {job ? <JobProgressView key={job.id} jobId={job.id} label={`Restore into ${targetName}`} onEnd={() => setRestoring(false)} /> : null}
    </Section>
  );
}
