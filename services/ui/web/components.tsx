import type { ComponentChildren } from 'preact';
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, api, watchJob } from './api.ts';
import { formatBytes } from './format.ts';
import { ACTIVE_JOB, type Job } from './types.ts';

/**
 * A form's actions: each clears the last error and message, then runs; a failure is kept to show
 * as the API stated it (ErrorBox), a success may set a message.
 */
export function useAction() {
  const [error, setError] = useState<unknown>(null);
  const [message, setMessage] = useState<string | null>(null);
  const act = async (fn: () => Promise<void>) => {
    setError(null);
    setMessage(null);
    try {
      await fn();
    } catch (err) {
      setError(err);
    }
  };
  return { error, message, setMessage, act };
}

/** An error shown as the API states it: its code and message. */
export function ErrorBox({ error }: { error: unknown }) {
  if (!error) return null;
  const e = error instanceof ApiError ? error : null;
  return (
    <div class="error" role="alert">
      {e ? (
        <>
          <strong>{e.status ? `${e.status} ${e.code}` : e.code}</strong>: {e.message}
        </>
      ) : (
        String((error as Error)?.message ?? error)
      )}
    </div>
  );
}

/** A page whose object the API would not show (404 for another tenant's, 401...): the API's error and a way back. */
export function NotShown({ title, error }: { title: string; error: unknown }) {
  return (
    <>
      <h1>{title}</h1>
      <ErrorBox error={error} />
      <p>
        <a href="#/instances">Back to the instances</a>
      </p>
    </>
  );
}

export interface Loaded<T> {
  data: T | undefined;
  error: unknown;
  loading: boolean;
  reload: () => void;
}

/** Runs `load` when `deps` change (and on reload()), keeping the last data while reloading. */
export function useLoad<T>(load: () => Promise<T>, deps: unknown[]): Loaded<T> {
  const [state, setState] = useState<{ data?: T; error?: unknown; loading: boolean }>({ loading: true });
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    setState((s) => ({ ...s, loading: true }));
    load().then(
      (data) => live && setState({ data, loading: false }),
      (error: unknown) => live && setState((s) => ({ data: s.data, error, loading: false })),
    );
    return () => {
      live = false;
    };
  }, [...deps, tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { data: state.data, error: state.error, loading: state.loading, reload };
}

export function Loading({ what }: { what: string }) {
  return (
    <p class="muted" aria-busy="true">
      Loading {what}…
    </p>
  );
}

export function Section({ title, id, children, actions }: { title: string; id: string; children: ComponentChildren; actions?: ComponentChildren }) {
  return (
    <section aria-labelledby={id} class="card">
      <div class="card-head">
        <h2 id={id}>{title}</h2>
        {actions}
      </div>
      {children}
    </section>
  );
}

export function StatusBadge({ status }: { status: string }) {
  return <span class={`badge status-${status}`}>{status}</span>;
}

/**
 * Live progress of a job over its event stream: stage, a progress bar, files and bytes, and the
 * final status (with the job's error). `onEnd` is called once with the last job.
 */
export function JobProgressView({ jobId, label, onEnd }: { jobId: string; label: string; onEnd?: (job: Job | null) => void }) {
  const [job, setJob] = useState<Job | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [ended, setEnded] = useState(false);
  const onEndRef = useRef(onEnd);
  onEndRef.current = onEnd;
  useEffect(() => {
    const abort = new AbortController();
    watchJob(jobId, setJob, abort.signal).then(
      (last) => {
        if (abort.signal.aborted) return;
        setEnded(true);
        onEndRef.current?.(last);
      },
      (err: unknown) => {
        if (abort.signal.aborted) return;
        setError(err);
        setEnded(true);
        onEndRef.current?.(null);
      },
    );
    return () => abort.abort();
  }, [jobId]);

  const p = job?.progress;
  const active = !ended && (!job || ACTIVE_JOB.has(job.status));
  const percent = p ? Math.max(0, Math.min(100, Math.round(p.percent))) : 0;
  return (
    <div class="progress-box" data-testid="job-progress" data-job-id={jobId} data-status={job?.status ?? 'queued'} data-ended={String(ended)}>
      <div class="progress-head">
        <strong>{label}</strong> <StatusBadge status={job?.status ?? 'queued'} />
        {active && job ? <CancelButton job={job} /> : null}
      </div>
      <progress max={100} value={job?.status === 'succeeded' ? 100 : percent} aria-label={`${label}: progress`}>
        {percent}%
      </progress>
      <p aria-live="polite" class="progress-text">
        {job?.status === 'succeeded'
          ? 'Finished'
          : job?.status && !ACTIVE_JOB.has(job.status)
            ? `Ended: ${job.status}`
            : p
              ? `${p.stage}: ${percent}%`
              : 'Waiting for a worker…'}
        {p && p.filesTotal > 0 ? ` · ${p.filesDone}/${p.filesTotal} files` : ''}
        {p && p.bytesTotal > 0 ? ` · ${formatBytes(p.bytesDone)} of ${formatBytes(p.bytesTotal)}` : ''}
        {p?.etaSeconds && active ? ` · about ${Math.ceil(p.etaSeconds)} s left` : ''}
      </p>
      {job?.error ? <ErrorBox error={new ApiError(0, job.errorCode ?? 'job-failed', job.error)} /> : null}
      <ErrorBox error={error} />
    </div>
  );
}

export function CancelButton({ job, onDone }: { job: Job; onDone?: () => void }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  return (
    <span>
      <button
        type="button"
        class="secondary"
        disabled={busy}
        onClick={async () => {
          setBusy(true);
          setError(null);
          try {
            await api('POST', `/v1/jobs/${encodeURIComponent(job.id)}/cancel`);
            onDone?.();
          } catch (err) {
            setError(err);
          } finally {
            setBusy(false);
          }
        }}
      >
        Cancel job
      </button>
      <ErrorBox error={error} />
    </span>
  );
}

/** A modal confirmation (`<dialog>`): focus moves into it, Escape closes it. */
export function ConfirmDialog({
  title,
  children,
  confirmLabel,
  onConfirm,
  onClose,
}: {
  title: string;
  children: ComponentChildren;
  confirmLabel: string;
  onConfirm: () => void;
  onClose: () => void;
}) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const d = ref.current;
    if (d && !d.open) d.showModal();
    return () => d?.close();
  }, []);
  return (
    <dialog ref={ref} aria-labelledby="confirm-title" onClose={onClose} onCancel={onClose}>
      <h2 id="confirm-title">{title}</h2>
      {children}
      <div class="actions">
        <button type="button" class="danger" onClick={onConfirm}>
          {confirmLabel}
        </button>
        <button type="button" class="secondary" onClick={() => ref.current?.close()} autofocus>
          Keep everything as it is
        </button>
      </div>
    </dialog>
  );
}

/** One column of a DataTable: its header, its cell, and whether it names the row (a row header). */
export interface Column<T> {
  header: string;
  cell: (row: T) => ComponentChildren;
  /** The cell is the row's `<th scope="row">` (screen readers announce it with each cell). */
  rowHeader?: boolean;
}

/**
 * The one table of the UI: a caption for screen readers, column headers, one row per item with
 * `data-*` attributes for finding it, and each cell labelled with its header for the stacked
 * layout at phone width (style.css `.responsive`).
 */
export function DataTable<T>({
  caption,
  columns,
  rows,
  rowKey,
  rowData,
  empty,
  busy,
  class: className,
}: {
  caption: string;
  columns: (Column<T> | null | false | undefined)[];
  rows: T[];
  rowKey: (row: T) => string;
  /** `data-*` attributes of a row, without the prefix (`{ 'backup-id': b.id }`). */
  rowData?: (row: T) => Record<string, string>;
  /** Shown in place of the table when there is no row (or as its only row when the table stays). */
  empty?: ComponentChildren;
  busy?: boolean;
  class?: string;
}) {
  const cols = columns.filter((c): c is Column<T> => Boolean(c));
  return (
    <div class="table-wrap">
      <table class={`responsive${className ? ` ${className}` : ''}`} aria-busy={busy}>
        <caption class="sr-only">{caption}</caption>
        <thead>
          <tr>
            {cols.map((c) => (
              <th scope="col" key={c.header}>
                {c.header}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {rows.map((row) => {
            const data = Object.fromEntries(Object.entries(rowData?.(row) ?? {}).map(([k, v]) => [`data-${k}`, v]));
            return (
              <tr key={rowKey(row)} {...data}>
                {cols.map((c) =>
                  c.rowHeader ? (
                    <th scope="row" key={c.header}>
                      {c.cell(row)}
                    </th>
                  ) : (
                    <td data-label={c.header} key={c.header}>
                      {c.cell(row)}
                    </td>
                  ),
                )}
              </tr>
            );
          })}
          {rows.length === 0 && empty ? (
            <tr>
              <td colSpan={cols.length} class="muted">
                {empty}
              </td>
            </tr>
          ) : null}
        </tbody>
      </table>
    </div>
  );
}
