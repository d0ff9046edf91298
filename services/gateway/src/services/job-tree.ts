import type { Job, RecordSet } from '@cairn/core';
import type { JobChild, JobView } from '@cairn/core/api/index.ts';
import { jobView } from './presenters.ts';

/** Job types whose view lists their child jobs (linked by `parentJobId`). */
const WITH_CHILDREN = new Set<string>(['migrate']);

export function jobChildView(j: Job): JobChild {
  const view = jobView(j);
  return { id: view.id, type: view.type, status: view.status, nodeId: view.nodeId, progress: view.progress };
}

/** A job as `GET /v1/jobs/:id` shows it: a migrate job with `children` (oldest first), every other type unchanged. */
export async function presentJob(records: Pick<RecordSet, 'jobs'>, job: Job): Promise<JobView> {
  const view = jobView(job);
  if (!WITH_CHILDREN.has(job.type)) return view;
  const children = await records.jobs.find({ parentJobId: job.id }, { order: 'asc' });
  // Children's ids name their step (`<parent>-<step>`), so they do not sort by age: order by creation.
  children.sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime() || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return { ...view, children: children.map(jobChildView) };
}
