import { useState } from 'preact/hooks';
import { api, query } from '../api.ts';
import { ErrorBox, Loading, Section, useAction, useLoad } from '../components.tsx';
import { formatAge, formatTime } from '../format.ts';
import type { Page, RetentionPolicy, RetentionPreview, Schedule } from '../types.ts';

const RULES: { key: keyof RetentionPolicy; label: string }[] = [
  { key: 'keepLast', label: 'Keep last' },
  { key: 'keepHourly', label: 'Hourly' },
  { key: 'keepDaily', label: 'Daily' },
  { key: 'keepWeekly', label: 'Weekly' },
  { key: 'keepMonthly', label: 'Monthly' },
  { key: 'keepYearly', label: 'Yearly' },
  { key: 'maxAgeDays', label: 'Max age (days)' },
];

export function describeRetention(r: RetentionPolicy): string {
  const parts = RULES.filter((rule) => r[rule.key] !== undefined).map((rule) => `${rule.label.toLowerCase()} ${r[rule.key]}`);
  return parts.length ? parts.join(', ') : 'none';
}

export function RetentionFields({ idPrefix, value, onChange }: { idPrefix: string; value: RetentionPolicy; onChange: (r: RetentionPolicy) => void }) {
  return (
    <fieldset class="retention">
      <legend>Retention</legend>
      {RULES.map((rule) => (
        <div class="field small-field" key={rule.key}>
          <label for={`${idPrefix}-${rule.key}`}>{rule.label}</label>
          <input
            id={`${idPrefix}-${rule.key}`}
            type="number"
            min={rule.key === 'maxAgeDays' ? 1 : 0}
            inputMode="numeric"
            value={value[rule.key] ?? ''}
            onInput={(e) => {
              const raw = (e.target as HTMLInputElement).value;
              const next = { ...value };
              if (raw === '') delete next[rule.key];
              else next[rule.key] = Number(raw);
              onChange(next);
            }}
          />
        </div>
      ))}
    </fieldset>
  );
}

/** A retention dry run's answer; `scope` says which backups the policy counts. */
export function PreviewResult({
  preview,
  scope = "A schedule's retention counts only the backups this schedule took; manual backups follow the instance's own policy.",
}: {
  preview: Omit<RetentionPreview, 'scheduleId'>;
  scope?: string;
}) {
  return (
    <div class="preview" aria-live="polite">
      <p>
        At {formatTime(preview.at)} ({preview.timezone}): keeps {preview.keep.length}, deletes {preview.drop.length}
        {preview.pinned.length ? `, leaves ${preview.pinned.length} pinned alone` : ''}
        {preview.untouched ? `, ${preview.untouched} not completed (never deleted by retention)` : ''}.
      </p>
      <p class="muted small">{scope}</p>
      {preview.keep.length ? (
        <>
          <h4>Kept</h4>
          <ul>
            {preview.keep.map((k) => (
              <li key={k.backupId}>
                {k.backupId} ({formatTime(k.createdAt)}): {k.reasons.map((r) => `${r.rule} ${r.bucket}`).join(', ')}
                {k.expiresAt ? `; expires ${formatTime(k.expiresAt)}` : ''}
              </li>
            ))}
          </ul>
        </>
      ) : null}
      {preview.drop.length ? (
        <>
          <h4>Deleted</h4>
          <ul>
            {preview.drop.map((d) => (
              <li key={d.backupId}>
                {d.backupId} ({formatTime(d.createdAt)}): {d.reason}
              </li>
            ))}
          </ul>
        </>
      ) : null}
    </div>
  );
}

function ScheduleItem({ schedule, onChange }: { schedule: Schedule; onChange: () => void }) {
  const [retention, setRetention] = useState<RetentionPolicy>(schedule.retention);
  const [preview, setPreview] = useState<RetentionPreview | null>(null);
  const enc = encodeURIComponent(schedule.id);
  const { error, message, setMessage, act } = useAction();
  return (
    <li class="schedule" data-schedule-id={schedule.id}>
      <p>
        <strong>
          <code>{schedule.cron}</code>
        </strong>{' '}
        ({schedule.timezone}) · {schedule.enabled ? 'enabled' : 'paused'} · volumes {schedule.volumes?.join(', ') ?? 'all'}
      </p>
      <p class="muted small">
        Next run {schedule.nextRunAt ? `${formatTime(schedule.nextRunAt)} (${formatAge(schedule.nextRunAt)})` : '—'} · last fired{' '}
        {formatTime(schedule.lastFiredAt)}
        {schedule.lastSkipReason ? ` · last skipped: ${schedule.lastSkipReason}` : ''} · retention: {describeRetention(schedule.retention)}
      </p>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          void act(async () => setPreview(await api<RetentionPreview>('POST', `/v1/schedules/${enc}/retention/preview`, { retention })));
        }}
      >
        <RetentionFields idPrefix={`ret-${schedule.id}`} value={retention} onChange={setRetention} />
        <div class="actions">
          <button type="submit" class="secondary">
            Preview retention
          </button>
          <button
            type="button"
            class="secondary"
            onClick={() =>
              act(async () => {
                await api('PATCH', `/v1/schedules/${enc}`, { retention });
                setMessage('Retention saved.');
                onChange();
              })
            }
          >
            Save retention
          </button>
          <button
            type="button"
            class="secondary"
            onClick={() =>
              act(async () => {
                await api('PATCH', `/v1/schedules/${enc}`, { enabled: !schedule.enabled });
                onChange();
              })
            }
          >
            {schedule.enabled ? 'Pause' : 'Resume'}
          </button>
          <button
            type="button"
            class="secondary"
            onClick={() =>
              act(async () => {
                await api('POST', `/v1/schedules/${enc}/run`);
                setMessage('Scheduled backup started: see Jobs.');
                onChange();
              })
            }
          >
            Run now
          </button>
        </div>
      </form>
      {message ? <p role="status">{message}</p> : null}
      <ErrorBox error={error} />
      {preview ? <PreviewResult preview={preview} /> : null}
    </li>
  );
}

function NewScheduleForm({ instanceId, onCreated }: { instanceId: string; onCreated: () => void }) {
  const [cron, setCron] = useState('0 3 * * *');
  const [timezone, setTimezone] = useState(() => Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC');
  const [retention, setRetention] = useState<RetentionPolicy>({ keepDaily: 7, keepWeekly: 4 });
  const [error, setError] = useState<unknown>(null);
  return (
    <details>
      <summary>Add a schedule</summary>
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          setError(null);
          try {
            await api('POST', `/v1/instances/${encodeURIComponent(instanceId)}/schedules`, { cron, timezone, retention });
            onCreated();
          } catch (err) {
            setError(err);
          }
        }}
      >
        <div class="inline-form">
          <div class="field">
            <label for="new-cron">Cron (minute hour day month weekday)</label>
            <input id="new-cron" required value={cron} onInput={(e) => setCron((e.target as HTMLInputElement).value)} />
          </div>
          <div class="field">
            <label for="new-tz">Time zone</label>
            <input id="new-tz" required value={timezone} onInput={(e) => setTimezone((e.target as HTMLInputElement).value)} />
          </div>
        </div>
        <RetentionFields idPrefix="new" value={retention} onChange={setRetention} />
        <button type="submit">Create schedule</button>
        <ErrorBox error={error} />
      </form>
    </details>
  );
}

/** The instance's schedules: next run, retention with a dry-run preview, pause/resume, run now; and a form to add one. */
export function SchedulesSection({ instanceId, onChange }: { instanceId: string; onChange: () => void }) {
  const schedules = useLoad(
    () => api<Page<Schedule>>('GET', `/v1/instances/${encodeURIComponent(instanceId)}/schedules${query({ limit: 100 })}`),
    [instanceId],
  );
  const changed = () => {
    schedules.reload();
    onChange();
  };
  return (
    <Section title="Schedules" id="schedules-title">
      {schedules.data ? (
        schedules.data.items.length ? (
          <ul class="schedules">
            {schedules.data.items.map((s) => (
              <ScheduleItem key={`${s.id}-${s.enabled}-${JSON.stringify(s.retention)}`} schedule={s} onChange={changed} />
            ))}
          </ul>
        ) : (
          <p class="muted">No schedule: backups run only when started.</p>
        )
      ) : schedules.error ? (
        <ErrorBox error={schedules.error} />
      ) : (
        <Loading what="schedules" />
      )}
      <NewScheduleForm instanceId={instanceId} onCreated={changed} />
    </Section>
  );
}
