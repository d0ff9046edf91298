import { CreateBucketCommand, HeadBucketCommand, S3Client } from '@aws-sdk/client-s3';
import fs from 'node:fs';
import { startS3Server } from '../../test/support/s3rver/index.ts';
import { isLoopback, tcpAnswers, type Log, type Started } from './process.ts';

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
    const server = await startS3Server({ directory, port, host: '127.0.0.1' });
    endpoint = server.endpoint;
    started = { name: 's3rver', stop: () => server.close() };
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
