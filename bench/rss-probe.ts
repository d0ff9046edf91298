/**
 * Peak RSS of one pack or unpack in a fresh process (what a node worker would see), run by the
 * benchmark as a child: `tsx bench/rss-probe.ts pack <dir> <codec>` or
 * `tsx bench/rss-probe.ts unpack <archive> <index.json.gz> <target>`. Prints JSON.
 */
import { createReadStream } from 'node:fs';
import { Writable } from 'node:stream';
import { packArchive, readIndex, sharedWorkerHost, unpackArchive, type Codec } from '../services/core/src/archive/index.ts';
import { peakRssMiB } from './measure.ts';

const [mode, a, b, c] = process.argv.slice(2);
const t = performance.now();
if (mode === 'pack') {
  await packArchive({ volumes: [{ name: 'data', dir: a! }], codec: (b ?? 'zstd') as Codec }, new Writable({ write: (_c, _e, cb) => cb() }));
} else if (mode === 'unpack') {
  // As a node worker restores: the index read as a stream, its entries kept in a temporary file.
  const index = await readIndex(createReadStream(b!));
  await unpackArchive({ target: c!, index, source: { stream: createReadStream(a!, { highWaterMark: 1 << 20 }) } });
  index.entries.close();
} else {
  throw new Error(`unknown mode ${mode}`);
}
const seconds = (performance.now() - t) / 1000;
process.stdout.write(JSON.stringify({ peakRssMiB: peakRssMiB(), seconds }));
await sharedWorkerHost().close();
