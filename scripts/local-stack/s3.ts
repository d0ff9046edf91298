import { CreateBucketCommand, HeadBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { isLoopback, stopChild, tcpAnswers, type Log, type Started } from './process.ts';

/**
 * Runs the fixed s3rver (test/support/s3rver) as a process of its own, so its disk work never
 * competes with Cairn's event loop and a client killed mid-upload cannot keep it from exiting.
 */
async function spawnS3rver(directory: string, port: number): Promise<{ endpoint: string; started: Started }> {
  // `node --import tsx` rather than the tsx binary: one process, so signals reach the server itself.
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', path.resolve('test/support/s3rver/main.ts'), '--directory', directory, '--port', String(port), '--host', '127.0.0.1'],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const endpoint = await new Promise<string>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.once('line', (line) => resolve(line.trim()));
    child.once('exit', (code) => reject(new Error(`s3rver exited with code ${code} before it was ready: ${stderr.trim()}`)));
  });
  child.stdout!.resume();
  return { endpoint, started: { name: 's3rver', stop: () => stopChild(child, 5000) } };
}

export interface S3Settings {
  endpoint: string;
  region: string;
  bucket: string;
  accessKeyId: string;
  secretAccessKey: string;
}

/**
 * Uses the S3-compatible server at `endpoint` when it answers; otherwise (no endpoint, or a
 * loopback one where nothing listens) starts the project's fixed s3rver storing into `directory`.
 * Either way the bucket exists afterwards.
 */
export async function ensureS3(settings: S3Settings, directory: string, log: Log): Promise<{ endpoint: string; started?: Started }> {
  let endpoint = settings.endpoint;
  let started: Started | undefined;
  const u = endpoint ? new URL(endpoint) : null;
  const port = u ? Number(u.port || (u.protocol === 'https:' ? 443 : 80)) : 0;
  if (u && (await tcpAnswers(u.hostname.replace(/^\[|\]$/g, ''), port))) {
    log(`s3: using the server at ${u.host}`);
  } else {
    if (u && !isLoopback(u.hostname)) throw new Error(`s3: nothing answers at ${u.host} and it is not a loopback address, so no local one can stand in`);
    fs.mkdirSync(directory, { recursive: true });
    ({ endpoint, started } = await spawnS3rver(directory, port));
    log(`s3: started the fixed s3rver at ${endpoint} (data ${directory})`);
  }
  const client = new S3Client({
    endpoint,
    region: settings.region,
    forcePathStyle: true,
    credentials: { accessKeyId: settings.accessKeyId, secretAccessKey: settings.secretAccessKey },
  });
  try {
    await client.send(new HeadBucketCommand({ Bucket: settings.bucket }));
  } catch {
    await client.send(new CreateBucketCommand({ Bucket: settings.bucket }));
    log(`s3: created bucket ${settings.bucket}`);
  } finally {
    client.destroy();
  }
  return { endpoint, started };
}
