/**
 * Packs the volume given as argv[2] to /dev/null and prints the result's warnings as JSON — run
 * as another user by tests that need a file the packer cannot read (root reads everything).
 */
import { Writable } from 'node:stream';
import { packArchive, sharedWorkerHost } from '@cairn/core/archive/index.ts';

const r = await packArchive({ volumes: [{ name: 'v', dir: process.argv[2]! }] }, new Writable({ write: (_c, _e, cb) => cb() }));
process.stdout.write(JSON.stringify({ warnings: r.warnings, paths: r.index.entries.map((e) => e.path) }));
await sharedWorkerHost().close();
