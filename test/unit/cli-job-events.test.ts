import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ApiError, CairnClient } from '../../services/cli/src/api-client.ts';
import { followJob } from '../../services/cli/src/job-progress.ts';

/** The CLI's reading of a job's event stream, against a local HTTP server that answers as the gateway's sse.ts does. */
const job = (status: string, stage: string) => ({
  id: 'j1',
  status,
  instanceId: 'i1',
  params: {},
  progress: { stage, bytesDone: 1, bytesTotal: 2, filesDone: 1, filesTotal: 2, percent: 50 },
  result: null,
  error: null,
});
const event = (name: string, data: unknown) => `event: ${name}\ndata: ${JSON.stringify(data)}\n\n`;

let server: Server | undefined;
afterEach(() => new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve())));

async function serve(body: string): Promise<CairnClient> {
  server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.end(`retry: 2000\n\n${body}`);
  });
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  return new CairnClient(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, 'token');
}

/** A stream that is not a terminal, so followJob prints one line per stage. */
const quiet = Object.assign(new (await import('node:stream')).PassThrough(), { isTTY: false }) as unknown as NodeJS.WriteStream;

describe('cli job events', () => {
  it('yields the job of each state and progress event, and followJob returns the last', async () => {
    const client = await serve(
      event('state', job('running', 'reading')) + event('progress', job('running', 'writing')) + event('end', job('succeeded', 'done')),
    );
    const seen: string[] = [];
    for await (const e of client.jobEvents('j1')) seen.push(`${e.event}:${e.data.progress?.stage}`);
    expect(seen).toEqual(['state:reading', 'progress:writing', 'end:done']);
    const done = await followJob(client, 'j1', quiet);
    expect(done.status).toBe('succeeded');
  });

  it('turns an error event into an ApiError naming the job, instead of a job without a status', async () => {
    const failure = { error: { code: 'unavailable', message: 'event stream stopped: redis went away' } };
    const client = await serve(event('state', job('running', 'reading')) + event('error', failure));
    const err = await followJob(client, 'j1', quiet).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).code).toBe('unavailable');
    expect((err as ApiError).message).toBe('event stream stopped: redis went away; job j1 goes on: cairn jobs show j1');
  });
});
