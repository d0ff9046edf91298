import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { session } from './api.ts';
import { BackupPage } from './pages/backup.tsx';
import { InstancePage } from './pages/instance.tsx';
import { InstancesPage } from './pages/instances.tsx';
import { JobsPage } from './pages/jobs.tsx';
import { SignInPage } from './pages/sign-in.tsx';
import './style.css';

/** Hash routes: #/instances, #/instances/:id, #/backups/:id, #/jobs. */
type Route = { page: 'instances' } | { page: 'instance'; id: string } | { page: 'backup'; id: string } | { page: 'jobs' };

function parseRoute(hash: string): Route {
  const parts = hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
  if (parts[0] === 'instances' && parts[1]) return { page: 'instance', id: parts[1] };
  if (parts[0] === 'backups' && parts[1]) return { page: 'backup', id: parts[1] };
  if (parts[0] === 'jobs') return { page: 'jobs' };
  return { page: 'instances' };
}

function App() {
  const [signedIn, setSignedIn] = useState(() => session.token !== null);
  const [route, setRoute] = useState(() => parseRoute(location.hash));
  const [notice, setNotice] = useState<string | null>(null);

  useEffect(() => {
    const onHash = () => setRoute(parseRoute(location.hash));
    const onUnauthorized = () => {
      session.signOut();
      setNotice('The API refused the token (401): sign in again.');
      setSignedIn(false);
    };
    window.addEventListener('hashchange', onHash);
    window.addEventListener('cairn:unauthorized', onUnauthorized);
    return () => {
      window.removeEventListener('hashchange', onHash);
      window.removeEventListener('cairn:unauthorized', onUnauthorized);
    };
  }, []);

  useEffect(() => {
    const titles: Record<Route['page'], string> = { instances: 'Instances', instance: 'Instance', backup: 'Backup', jobs: 'Jobs' };
    document.title = signedIn ? `${titles[route.page]} · Cairn` : 'Sign in · Cairn';
    document.getElementById('main')?.focus();
  }, [route, signedIn]);

  if (!signedIn) {
    return (
      <>
        <header class="top">
          <span class="brand">Cairn</span>
        </header>
        <main id="main" tabIndex={-1}>
          <SignInPage
            notice={notice}
            onSignedIn={() => {
              setNotice(null);
              setSignedIn(true);
            }}
          />
        </main>
      </>
    );
  }
  return (
    <>
      <button type="button" class="skip" onClick={() => document.getElementById('main')?.focus()}>
        Skip to content
      </button>
      <header class="top">
        <a class="brand" href="#/instances">
          Cairn
        </a>
        <nav aria-label="Main">
          <a href="#/instances" aria-current={route.page === 'instances' || route.page === 'instance' ? 'page' : undefined}>
            Instances
          </a>
          <a href="#/jobs" aria-current={route.page === 'jobs' ? 'page' : undefined}>
            Jobs
          </a>
          <button
            type="button"
            class="link"
            onClick={() => {
              session.signOut();
              setSignedIn(false);
            }}
          >
            Sign out
          </button>
        </nav>
      </header>
      <main id="main" tabIndex={-1}>
        {route.page === 'instances' ? <InstancesPage /> : null}
        {route.page === 'instance' ? <InstancePage id={route.id} /> : null}
        {route.page === 'backup' ? <BackupPage id={route.id} /> : null}
        {route.page === 'jobs' ? <JobsPage /> : null}
      </main>
    </>
  );
}

render(<App />, document.getElementById('app')!);
