import { useState } from 'preact/hooks';
import { api } from '../api.ts';
import { ErrorBox, Loading, Section, useAction, useLoad } from '../components.tsx';
import { formatTime } from '../format.ts';
import type { InstancePolicy, ManualRetentionPreview, RetentionPolicy } from '../types.ts';
import { PreviewResult, RetentionFields, describeRetention } from './schedules.tsx';

/**
 * The instance's own policy for manual backups (GET/PATCH /v1/instances/:id/policy): the manual
 * backup limit, a retention policy with a dry-run preview, and the time zone its calendar rules use.
 */
export function InstancePolicySection({ instanceId }: { instanceId: string }) {
  const enc = encodeURIComponent(instanceId);
  const policy = useLoad(() => api<InstancePolicy>('GET', `/v1/instances/${enc}/policy`), [instanceId]);
  return (
    <Section title="Manual backups policy" id="policy-title">
      {policy.data ? (
        <PolicyForm key={policy.data.updatedAt ?? 'default'} policy={policy.data} onSaved={policy.reload} />
      ) : policy.error ? (
        <ErrorBox error={policy.error} />
      ) : (
        <Loading what="the policy" />
      )}
    </Section>
  );
}

function PolicyForm({ policy, onSaved }: { policy: InstancePolicy; onSaved: () => void }) {
  const enc = encodeURIComponent(policy.instanceId);
  const [limit, setLimit] = useState(policy.manualBackupLimit === null ? '' : String(policy.manualBackupLimit));
  const [keep, setKeep] = useState(policy.manualRetention !== null);
  const [retention, setRetention] = useState<RetentionPolicy>(policy.manualRetention ?? { keepLast: 10 });
  const [timezone, setTimezone] = useState(policy.timezone);
  const [preview, setPreview] = useState<ManualRetentionPreview | null>(null);
  const { error, message, setMessage, act } = useAction();
  return (
    <div data-testid="instance-policy">
      <p>
        Limit: {policy.effectiveManualBackupLimit} manual backups ({policy.manualBackupLimit === null ? 'the configured default' : "the instance's own"}
        ), now {policy.manualBackups.counted} counted and {policy.manualBackups.pinned} pinned (never counted). Retention of manual backups:{' '}
        {policy.manualRetention ? describeRetention(policy.manualRetention) : 'none (kept until deleted)'}
        {policy.updatedAt ? ` · changed ${formatTime(policy.updatedAt)}` : ''}.
      </p>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          void act(async () => {
            await api('PATCH', `/v1/instances/${enc}/policy`, {
              manualBackupLimit: limit.trim() === '' ? null : Number(limit),
              manualRetention: keep ? retention : null,
              timezone,
            });
            setMessage('Policy saved.');
            onSaved();
          });
        }}
      >
        <div class="inline-form">
          <div class="field">
            <label for="policy-limit">Manual backup limit (empty: the default)</label>
            <input id="policy-limit" type="number" min={1} inputMode="numeric" value={limit} onInput={(e) => setLimit((e.target as HTMLInputElement).value)} />
          </div>
          <div class="field">
            <label for="policy-tz">Time zone</label>
            <input id="policy-tz" required value={timezone} onInput={(e) => setTimezone((e.target as HTMLInputElement).value)} />
          </div>
        </div>
        <div class="field check">
          <input id="policy-keep" type="checkbox" checked={keep} onChange={(e) => setKeep((e.target as HTMLInputElement).checked)} />
          <label for="policy-keep">Apply a retention policy to manual backups (pinned ones are exempt)</label>
        </div>
        {keep ? <RetentionFields idPrefix="policy" value={retention} onChange={setRetention} /> : null}
        <div class="actions">
          <button type="submit">Save policy</button>
          {keep ? (
            <button
              type="button"
              class="secondary"
              onClick={() =>
                act(async () => setPreview(await api<ManualRetentionPreview>('POST', `/v1/instances/${enc}/policy/retention/preview`, { retention, timezone })))
              }
            >
              Preview manual retention
            </button>
          ) : null}
        </div>
      </form>
      {message ? <p role="status">{message}</p> : null}
      <ErrorBox error={error} />
      {preview ? <PreviewResult preview={preview} scope="Manual retention counts the completed, unpinned manual backups of this instance." /> : null}
    </div>
  );
}
