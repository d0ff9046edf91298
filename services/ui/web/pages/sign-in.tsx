import { useState } from 'preact/hooks';
import { api, session } from '../api.ts';
import { ErrorBox } from '../components.tsx';

/** Asks for an API token, checks it against the API, and keeps it in this tab's sessionStorage. */
export function SignInPage({ onSignedIn, notice }: { onSignedIn: () => void; notice: string | null }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  return (
    <form
      class="card narrow"
      aria-labelledby="signin-title"
      onSubmit={async (e) => {
        e.preventDefault();
        setBusy(true);
        setError(null);
        try {
          await api('GET', '/v1/instances?limit=1', undefined, token.trim());
          session.signIn(token.trim());
          onSignedIn();
        } catch (err) {
          setError(err);
        } finally {
          setBusy(false);
        }
      }}
    >
      <h1 id="signin-title">Sign in</h1>
      {notice ? <p role="status">{notice}</p> : null}
      <p class="muted">Use a Cairn API token. It is kept in this browser tab only, and forgotten when the tab closes.</p>
      <label for="token">API token</label>
      <input
        id="token"
        name="token"
        type="password"
        autocomplete="off"
        required
        value={token}
        onInput={(e) => setToken((e.target as HTMLInputElement).value)}
      />
      <button type="submit" disabled={busy || !token.trim()}>
        {busy ? 'Signing in…' : 'Sign in'}
      </button>
      <ErrorBox error={error} />
    </form>
  );
}
