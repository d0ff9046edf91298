import { useState } from 'preact/hooks';
import { api } from '../api.ts';
import { ErrorBox, Section } from '../components.tsx';
import type { Hook, HookStage, Instance } from '../types.ts';

const STAGES: { key: HookStage; label: string }[] = [
  { key: 'preBackup', label: 'Before a backup' },
  { key: 'postBackup', label: 'After a backup' },
  { key: 'preRestore', label: 'Before a restore' },
  { key: 'postRestore', label: 'After a restore' },
];

type Draft = { type: '' | 'webhook' | 'command'; target: string; timeoutSeconds: string; onError: 'fail' | 'continue' };

const draftOf = (h: Hook | undefined): Draft =>
  h
    ? { type: h.type, target: (h.type === 'webhook' ? h.url : h.name) ?? '', timeoutSeconds: String(h.timeoutSeconds ?? ''), onError: h.onError ?? 'fail' }
    : { type: '', target: '', timeoutSeconds: '', onError: 'fail' };

function hookOf(d: Draft): Hook | undefined {
  if (!d.type) return undefined;
  return {
    type: d.type,
    ...(d.type === 'webhook' ? { url: d.target.trim() } : { name: d.target.trim() }),
    ...(d.timeoutSeconds.trim() ? { timeoutSeconds: Number(d.timeoutSeconds) } : {}),
    onError: d.onError,
  };
}

/**
 * The instance's hook policy (PATCH /v1/instances/:id {hooks}): per stage none, a webhook or a
 * command of the node's hooks file, its timeout and whether a failure fails the job. The hook
 * secret is shown once, when the API returns it (the first hooks, or a rotation).
 */
export function InstanceHooksSection({ instance, onSaved }: { instance: Instance; onSaved: () => void }) {
  const [drafts, setDrafts] = useState<Record<HookStage, Draft>>(() => {
    const out = {} as Record<HookStage, Draft>;
    for (const s of STAGES) out[s.key] = draftOf(instance.hooks?.[s.key]);
    return out;
  });
  const [error, setError] = useState<unknown>(null);
  const [secret, setSecret] = useState<string | null>(null);
  const [message, setMessage] = useState<string | null>(null);
  const set = (stage: HookStage, change: Partial<Draft>) => setDrafts((d) => ({ ...d, [stage]: { ...d[stage], ...change } }));
  const save = async (body: Record<string, unknown>, done: string) => {
    setError(null);
    setMessage(null);
    try {
      const res = await api<Instance>('PATCH', `/v1/instances/${encodeURIComponent(instance.id)}`, body);
      setSecret(res.hookSecret ?? null);
      setMessage(done);
      onSaved();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <Section title="Hooks" id="hooks-title">
      <form
        data-testid="instance-hooks"
        onSubmit={(e) => {
          e.preventDefault();
          const hooks = Object.fromEntries(STAGES.flatMap((s) => (hookOf(drafts[s.key]) ? [[s.key, hookOf(drafts[s.key])]] : [])));
          void save({ hooks: Object.keys(hooks).length ? hooks : null }, 'Hooks saved.');
        }}
      >
        {STAGES.map((s) => {
          const d = drafts[s.key];
          const id = `hook-${s.key}`;
          return (
            <fieldset key={s.key} class="inline-form">
              <legend>{s.label}</legend>
              <div class="field">
                <label for={`${id}-type`}>Kind</label>
                <select id={`${id}-type`} value={d.type} onChange={(e) => set(s.key, { type: (e.target as HTMLSelectElement).value as Draft['type'] })}>
                  <option value="">none</option>
                  <option value="webhook">webhook</option>
                  <option value="command">command of the node's hooks file</option>
                </select>
              </div>
              {d.type ? (
                <>
                  <div class="field grow">
                    <label for={`${id}-target`}>{d.type === 'webhook' ? 'URL' : 'Command name'}</label>
                    <input id={`${id}-target`} required value={d.target} onInput={(e) => set(s.key, { target: (e.target as HTMLInputElement).value })} />
                  </div>
                  <div class="field">
                    <label for={`${id}-timeout`}>Timeout (s)</label>
                    <input
                      id={`${id}-timeout`}
                      type="number"
                      min={1}
                      inputMode="numeric"
                      value={d.timeoutSeconds}
                      onInput={(e) => set(s.key, { timeoutSeconds: (e.target as HTMLInputElement).value })}
                    />
                  </div>
                  <div class="field">
                    <label for={`${id}-onerror`}>On failure</label>
                    <select
                      id={`${id}-onerror`}
                      value={d.onError}
                      onChange={(e) => set(s.key, { onError: (e.target as HTMLSelectElement).value as Draft['onError'] })}
                    >
                      <option value="fail">fail the job</option>
                      <option value="continue">continue with a warning</option>
                    </select>
                  </div>
                </>
              ) : null}
            </fieldset>
          );
        })}
        <div class="actions">
          <button type="submit">Save hooks</button>
          {instance.hooks ? (
            <button type="button" class="secondary" onClick={() => save({ rotateHookSecret: true }, 'Hook secret rotated.')}>
              Rotate the webhook secret
            </button>
          ) : null}
        </div>
      </form>
      {message ? <p role="status">{message}</p> : null}
      {secret ? (
        <p class="secret" data-testid="hook-secret">
          Webhook signing secret (shown this once; webhooks verify <code>X-Cairn-Signature</code> with it): <code>{secret}</code>
        </p>
      ) : null}
      <ErrorBox error={error} />
    </Section>
  );
}
