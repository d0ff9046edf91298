import { useState } from 'preact/hooks';
import { api, query } from '../api.ts';
import { ErrorBox, Loading, useLoad } from '../components.tsx';
import type { Job, Page } from '../types.ts';
import { JobsTable } from './instance.tsx';

const STATUSES = ['', 'queued', 'running', 'succeeded', 'failed', 'cancelled', 'interrupted'];

/** Job history (the token's tenant, or all for an admin), filterable by status, with follow and cancel. */
export function JobsPage() {
  const [status, setStatus] = useState('');
  const jobs = useLoad(() => api<Page<Job>>('GET', `/v1/jobs${query({ status, limit: 100 })}`), [status]);
  return (
    <>
      <h1>Jobs</h1>
      <div class="inline-form">
        <div class="field">
          <label for="job-status">Status</label>
          <select id="job-status" value={status} onChange={(e) => setStatus((e.target as HTMLSelectElement).value)}>
            {STATUSES.map((s) => (
              <option key={s} value={s}>
                {s || 'any'}
              </option>
            ))}
          </select>
        </div>
        <button type="button" class="secondary" onClick={jobs.reload}>
          Refresh
        </button>
      </div>
      {jobs.data ? (
        <JobsTable jobs={jobs.data.items} onChange={jobs.reload} showInstance />
      ) : jobs.error ? (
        <ErrorBox error={jobs.error} />
      ) : (
        <Loading what="jobs" />
      )}
    </>
  );
}
