// Builds the web UI (services/ui, Preact + Vite) into services/ui/dist, which the gateway serves
// at /ui. Run by `npm install`/`npm ci` (postinstall) and `npm run build:ui`. From postinstall it
// never fails the install: without Vite (an install without dev dependencies) or on a build
// error it says so, and the gateway answers /ui with a page saying the UI is not built.
// `--strict` (npm run build:ui) exits non-zero on a failed build instead.
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const uiRoot = join(root, 'services', 'ui');
const strict = process.argv.includes('--strict');

let vite;
try {
  vite = await import('vite');
} catch (err) {
  console.warn(`cairn: web UI not built (Vite is not installed: ${err.message.split('\n')[0]}); the gateway answers /ui with a note`);
  process.exit(strict ? 1 : 0);
}
try {
  await vite.build({ root: uiRoot, logLevel: 'warn' });
  console.log(`cairn: web UI built into ${join('services', 'ui', 'dist')}`);
} catch (err) {
  console.warn(`cairn: web UI not built: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(strict ? 1 : 0);
}
