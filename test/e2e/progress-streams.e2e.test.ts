import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCairn, type Cairn } from '../support/cairn-harness.ts';

interface StreamEvent {
  event: string;
  data: any;
}

/** One open `GET /v1/jobs/:id/events`: its events as they arrive, until it ends or is closed. */
interface OpenStream {
  status: number;
  body: any;
  events: StreamEvent[];
  comments: number;
  ended: Promise<void>;
  close(): void;
}

async function openStream(cairn: Cairn, jobId: string, token: string): Promise<OpenStream> {
  const abort = new AbortController();
  const res = await fetch(`${cairn.url}/v1/jobs/${jobId}/events`, { headers: { authorization: `Bearer ${token}` }, signal: abort.signal });
  const stream: OpenStream = { status: res.status, body: null, events: [], comments: 0, ended: Promise.resolve(), close: () => abort.abort() };
  if (res.status !== 200) {
    stream.body = await res.json();
    return stream;
  }
  stream.ended = (async () => {
    let text = '';
    try {
      for await (const chunk of res.body!.pipeThrough(new TextDecoderStream())) {
        text += chunk;
        for (let cut = text.indexOf('\n\n'); cut >= 0; cut = text.indexOf('\n\n')) {
          const block = text.slice(0, cut);
          text = text.slice(cut + 2);
          if (block.startsWith(':')) stream.comments++;
          const event = /^event: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (event && data !== undefined) stream.events.push({ event, data: JSON.parse(data) });
        }
      }
    } catch (err) {
      if (!abort.signal.aborted) throw err;
    }
  })();
  return stream;
}

/** Incompressible files, so the backup runs long enough to report progress more than once. */
function writeRandomFiles(dir: string, files: number, bytesEach: number): void {
  fs.mkdirSync(dir, { recursive: true });
  for (let i = 0; i < files; i++) fs.writeFileSync(path.join(dir, `blob-${i}.bin`), randomBytes(bytesEach));
}

describe('progress streams (issue 17)', () => {
  let cairn: Cairn;
  let instanceId: string;
  let member: string;
  let otherMember: string;

  beforeAll(async () => {
    // The periodic re-read is made far longer than the test: every change a stream sees after its
    // first event comes through the workers' Redis notices.
    cairn = await startCairn({ nodeWorker: 'none', compression: 'none', env: { JOB_STREAMS_PER_TOKEN: '3', JOB_STREAM_POLL_MS: '600000' } });
    // Registered as its worker would; the worker itself starts when a test wants the job to run.
    await cairn.runtime.records.nodes.heartbeat(cairn.nodeId, { volumeRoots: [cairn.volumeRoot], version: 'test', lastHeartbeatAt: new Date(), capacity: {} });
    const dir = path.join(cairn.volumeRoot, 'app/data');
    writeRandomFiles(dir, 6, 8 << 20);
    const created = await cairn.api('POST', '/v1/instances', {
      name: 'app',
      nodeId: cairn.nodeId,
      tenant: cairn.tenant,
      volumes: [{ name: 'data', hostPath: dir }],
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    instanceId = created.body.id;
    for (const name of ['watcher', 'other-watcher']) {
      const res = await cairn.api('POST', '/v1/tokens', { name, role: 'member', tenant: cairn.tenant });
      expect(res.status, JSON.stringify(res.body)).toBe(201);
      if (name === 'watcher') member = res.body.token;
      else otherMember = res.body.token;
    }
  });
  afterAll(async () => {
    await cairn?.close();
  });

  it('gives every watcher of a job the same progress, state changes and final state from the worker', async () => {
    const started = await cairn.api('POST', `/v1/instances/${instanceId}/backups`, {});
    expect(started.status, JSON.stringify(started.body)).toBe(202);
    const jobId = started.body.job.id;
    const streams = [await openStream(cairn, jobId, member), await openStream(cairn, jobId, member), await openStream(cairn, jobId, cairn.adminToken)];
    expect(streams.map((s) => s.status)).toEqual([200, 200, 200]);
    await expect.poll(() => streams.map((s) => s.events[0]?.data.status)).toEqual(['queued', 'queued', 'queued']);

    await cairn.startInProcessNodeWorker();
    await Promise.all(streams.map((s) => s.ended));

    const final = (await cairn.api('GET', `/v1/jobs/${jobId}`)).body;
    expect(final.status).toBe('succeeded');
    for (const s of streams) {
      const names = s.events.map((e) => e.event);
      expect(names[0]).toBe('state');
      expect(names.at(-1)).toBe('end');
      // Seen live (not only at open): the claim, progress while it ran, the end.
      expect(s.events.some((e) => e.event === 'state' && e.data.status === 'running')).toBe(true);
      expect(s.events.some((e) => e.event === 'progress' && e.data.progress.bytesDone > 0)).toBe(true);
      const last = s.events.filter((e) => e.event !== 'end').at(-1)!;
      expect(last).toMatchObject({ event: 'state', data: { status: 'succeeded' } });
      expect(last.data).toEqual(final);
      expect(s.events.at(-1)!.data).toEqual(final);
      // Progress only moves forward on every stream.
      const done = s.events.filter((e) => e.data?.progress).map((e) => e.data.progress.bytesDone as number);
      expect(done).toEqual([...done].sort((a, b) => a - b));
    }
  }, 120_000);

  it('caps the open streams of a token (429 in the error shape) and frees a slot when a client goes away', async () => {
    await cairn.stopInProcessNodeWorker();
    const started = await cairn.api('POST', `/v1/instances/${instanceId}/backups`, {});
    expect(started.status, JSON.stringify(started.body)).toBe(202);
    const jobId = started.body.job.id;
    const open = [];
    for (let i = 0; i < 3; i++) open.push(await openStream(cairn, jobId, member));
    expect(open.map((s) => s.status)).toEqual([200, 200, 200]);

    const refused = await openStream(cairn, jobId, member);
    expect(refused.status).toBe(429);
    expect(refused.body).toEqual({ error: { code: 'limit', message: expect.stringContaining('limit 3'), details: { limit: 3, open: 3 } } });
    // Another token of the same tenant has slots of its own.
    const other = await openStream(cairn, jobId, otherMember);
    expect(other.status).toBe(200);

    open[0]!.close();
    await open[0]!.ended;
    let again: OpenStream | undefined;
    await expect
      .poll(async () => {
        again = await openStream(cairn, jobId, member);
        if (again.status !== 200) return again.status;
        return 200;
      })
      .toBe(200);
    await expect.poll(() => again!.events[0]?.data.status).toBe('queued');

    // A failed open holds no slot: the other token (one stream open) gets 404s, never a 429.
    for (let i = 0; i < 5; i++) expect((await openStream(cairn, '01NOSUCHJOB0000000000000000', otherMember)).status).toBe(404);

    // Cancelling the queued job ends every stream with its final state.
    expect((await cairn.api('POST', `/v1/jobs/${jobId}/cancel`)).status).toBe(200);
    const live = [...open.slice(1), other, again!];
    await Promise.all(live.map((s) => s.ended));
    for (const s of live) expect(s.events.at(-1)).toMatchObject({ event: 'end', data: { status: 'cancelled' } });
  }, 60_000);
});
