import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Middleware } from 'koa';

/** Where `npm install` / `npm run build:ui` put the web UI (services/ui/dist), from this file's place in the repository. */
export const DEFAULT_UI_DIR = fileURLToPath(new URL('../../../ui/dist/', import.meta.url));

export interface UiStaticOptions {
  /** The built UI: index.html and assets/. */
  dir?: string;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
  '.map': 'application/json',
};

/** The UI talks to its own origin only; no inline script, no CDN. */
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'self'";

const NOT_BUILT = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Cairn: web UI not built</title></head>
<body><h1>The Cairn web UI is not built</h1>
<p>This gateway has no build of the web UI. <code>npm install</code> builds it; or run <code>npm run build:ui</code>, then reload.</p>
<p>The API answers as usual at <code>/v1</code> (see <a href="/openapi.json">/openapi.json</a>).</p></body></html>
`;

async function statFile(file: string): Promise<fs.Stats | null> {
  try {
    const st = await fs.promises.stat(file);
    return st.isFile() ? st : null;
  } catch {
    return null;
  }
}

/**
 * Serves the web UI at `/ui/` (and redirects `/` there): the files of the Vite build, with
 * long-lived caching for the hashed assets and none for index.html. Any other path under /ui that
 * is no file answers index.html (the app routes in the URL hash, so this only helps old links).
 * When the build is missing, /ui answers 503 saying how to build it; nothing else is affected.
 */
export function uiStatic(options: UiStaticOptions = {}): Middleware {
  const root = path.resolve(options.dir ?? DEFAULT_UI_DIR);
  return async (ctx, next) => {
    if (ctx.method !== 'GET' && ctx.method !== 'HEAD') return next();
    if (ctx.path === '/') return ctx.redirect('/ui/');
    if (ctx.path === '/ui') return ctx.redirect('/ui/');
    if (!ctx.path.startsWith('/ui/')) return next();

    const index = path.join(root, 'index.html');
    const indexStat = await statFile(index);
    if (!indexStat) {
      ctx.status = 503;
      ctx.type = 'text/html; charset=utf-8';
      ctx.set('Cache-Control', 'no-store');
      ctx.body = NOT_BUILT;
      return;
    }

    let relative: string;
    try {
      relative = decodeURIComponent(ctx.path.slice('/ui/'.length));
    } catch {
      return next();
    }
    let file = index;
    let st: fs.Stats | null = indexStat;
    if (relative !== '' && !relative.includes('\0')) {
      const candidate = path.resolve(root, relative);
      if (candidate.startsWith(root + path.sep)) {
        const found = await statFile(candidate);
        if (found) {
          file = candidate;
          st = found;
        } else if (relative.startsWith('assets/')) {
          return next(); // a missing asset is a 404, not the app
        }
      }
    }

    ctx.status = 200;
    ctx.type = TYPES[path.extname(file)] ?? 'application/octet-stream';
    ctx.length = st.size;
    ctx.set('X-Content-Type-Options', 'nosniff');
    ctx.set('Content-Security-Policy', CSP);
    ctx.set('Referrer-Policy', 'no-referrer');
    ctx.set('Cache-Control', file === index ? 'no-cache' : relative.startsWith('assets/') ? 'public, max-age=31536000, immutable' : 'public, max-age=300');
    if (ctx.method === 'GET') ctx.body = fs.createReadStream(file);
  };
}
