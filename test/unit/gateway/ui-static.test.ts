import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import Koa from 'koa';
import { afterEach, describe, expect, it } from 'vitest';
import { uiStatic } from '@cairn/gateway/http/ui-static.ts';

/** The gateway's web UI route over a directory of its own: files, redirects, the SPA fallback, and a missing build. */

const servers: http.Server[] = [];
const dirs: string[] = [];
afterEach(() => {
  for (const s of servers.splice(0)) s.close();
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

async function serve(dir: string) {
  const app = new Koa();
  app.use(uiStatic({ dir }));
  app.use((ctx) => {
    ctx.status = 404;
    ctx.body = { error: { code: 'not-found', message: `no route ${ctx.path}` } };
  });
  const server = http.createServer(app.callback()).listen(0, '127.0.0.1');
  servers.push(server);
  await new Promise((r) => server.once('listening', r));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return (p: string, init?: RequestInit) => fetch(`${base}${p}`, { redirect: 'manual', ...init });
}

function built(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-ui-dist-'));
  dirs.push(dir);
  fs.mkdirSync(path.join(dir, 'assets'));
  fs.writeFileSync(path.join(dir, 'index.html'), '<!doctype html><title>Cairn</title>');
  fs.writeFileSync(path.join(dir, 'assets/app-1234.js'), 'console.log(1)');
  fs.writeFileSync(path.join(path.dirname(dir), `${path.basename(dir)}-secret.txt`), 'TOP SECRET CONTENT');
  dirs.push(path.join(path.dirname(dir), `${path.basename(dir)}-secret.txt`));
  return dir;
}

describe('web UI static route', () => {
  it('redirects / and /ui to /ui/ and serves index.html and hashed assets', async () => {
    const get = await serve(built());
    for (const p of ['/', '/ui']) {
      const res = await get(p);
      expect(res.status).toBe(302);
      expect(res.headers.get('location')).toBe('/ui/');
    }
    const index = await get('/ui/');
    expect(index.status).toBe(200);
    expect(index.headers.get('content-type')).toContain('text/html');
    expect(index.headers.get('cache-control')).toBe('no-cache');
    expect(index.headers.get('content-security-policy')).toContain("default-src 'self'");
    expect(await index.text()).toContain('<title>Cairn</title>');

    const asset = await get('/ui/assets/app-1234.js');
    expect(asset.status).toBe(200);
    expect(asset.headers.get('content-type')).toContain('text/javascript');
    expect(asset.headers.get('cache-control')).toContain('immutable');
    expect(await asset.text()).toBe('console.log(1)');

    const head = await get('/ui/assets/app-1234.js', { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-length')).toBe('14');
  });

  it('answers index.html for other /ui paths, 404 for a missing asset, and never leaves its directory', async () => {
    const dir = built();
    const get = await serve(dir);
    expect(await (await get('/ui/instances/abc')).text()).toContain('<title>Cairn</title>');
    const missing = await get('/ui/assets/gone.js');
    expect(missing.status).toBe(404);
    for (const p of [`/ui/../${path.basename(dir)}-secret.txt`, `/ui/%2e%2e/${path.basename(dir)}-secret.txt`, '/ui/%2e%2e%2fetc%2fpasswd']) {
      const res = await get(p);
      expect(await res.text()).not.toContain('TOP SECRET CONTENT');
    }
    // Other paths pass through untouched.
    expect((await get('/v1/instances')).status).toBe(404);
  });

  it('says the UI is not built (503) when its directory is missing, and leaves the rest alone', async () => {
    const get = await serve(path.join(os.tmpdir(), 'cairn-ui-no-such-dir'));
    const res = await get('/ui/');
    expect(res.status).toBe(503);
    expect(await res.text()).toContain('The Cairn web UI is not built');
    expect((await get('/healthz')).status).toBe(404); // passed on to the next middleware
  });
});
