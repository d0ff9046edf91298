import { defineConfig } from 'vite';

/**
 * The web UI: a Preact single-page app served by the gateway at /ui (services/gateway/src/http/ui-static.ts
 * serves dist/). `npm run dev -w @cairn/ui` serves it with hot reload and forwards the API to a gateway
 * on 127.0.0.1:8080 (`npm start`).
 */
export default defineConfig({
  base: '/ui/',
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: { outDir: 'dist', emptyOutDir: true, target: 'es2022', sourcemap: false },
  server: {
    proxy: { '/v1': 'http://127.0.0.1:8080', '/openapi.json': 'http://127.0.0.1:8080' },
  },
});
