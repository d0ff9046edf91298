// Worker threads start from this plain-JS file: Node 20 cannot load TypeScript by itself, so it
// registers tsx's loader (in vitest as under tsx) and then imports the real worker module.
import { workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
await import(workerData.entry);
