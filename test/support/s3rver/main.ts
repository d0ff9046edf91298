/**
 * Runs the fixed s3rver as its own process:
 *   tsx test/support/s3rver/main.ts --directory .cairn/s3 --port 4568 --bucket cairn
 * Options fall back to S3RVER_DIRECTORY, S3RVER_PORT, S3RVER_HOST, S3RVER_BUCKETS (comma
 * separated), S3RVER_ACCESS_KEY_ID/S3RVER_SECRET_ACCESS_KEY, S3RVER_VERBOSE=1. The first line on
 * stdout is the endpoint URL; the process stops cleanly on SIGINT/SIGTERM.
 */
import { parseArgs } from 'node:util';
import { startS3Server } from './s3-server.ts';

const USAGE = 'usage: main.ts --directory DIR [--port N] [--host ADDR] [--bucket NAME]... [--access-key-id ID --secret-access-key KEY] [--verbose]';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      directory: { type: 'string' },
      port: { type: 'string' },
      host: { type: 'string' },
      bucket: { type: 'string', multiple: true },
      'access-key-id': { type: 'string' },
      'secret-access-key': { type: 'string' },
      verbose: { type: 'boolean' },
      help: { type: 'boolean' },
    },
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const env = process.env;
  const directory = values.directory ?? env['S3RVER_DIRECTORY'];
  const portText = values.port ?? env['S3RVER_PORT'] ?? '0';
  const port = Number(portText);
  const problems: string[] = [];
  if (!directory) problems.push('--directory (or S3RVER_DIRECTORY) is required');
  if (!/^\d+$/.test(portText) || port > 65535) problems.push(`port must be an integer 0-65535, got "${portText}"`);
  const accessKeyId = values['access-key-id'] ?? env['S3RVER_ACCESS_KEY_ID'];
  const secretAccessKey = values['secret-access-key'] ?? env['S3RVER_SECRET_ACCESS_KEY'];
  if (Boolean(accessKeyId) !== Boolean(secretAccessKey)) problems.push('an access key id needs a secret access key and vice versa');
  if (problems.length || !directory) {
    process.stderr.write(`${problems.join('\n')}\n${USAGE}\n`);
    process.exitCode = 2;
    return;
  }
  const buckets =
    values.bucket ??
    (env['S3RVER_BUCKETS'] ?? '')
      .split(',')
      .map((b) => b.trim())
      .filter(Boolean);
  const server = await startS3Server({
    directory,
    port,
    host: values.host ?? env['S3RVER_HOST'] ?? '127.0.0.1',
    buckets,
    ...(accessKeyId && secretAccessKey ? { credentials: [{ accessKeyId, secretAccessKey }] } : {}),
    verbose: values.verbose ?? env['S3RVER_VERBOSE'] === '1',
  });
  process.stdout.write(`${server.endpoint}\n`);
  const stop = (signal: string) => {
    process.stderr.write(`s3rver: ${signal}, closing\n`);
    server.close().then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`s3rver: close failed: ${String(err)}\n`);
        process.exit(1);
      },
    );
  };
  process.once('SIGINT', () => stop('SIGINT'));
  process.once('SIGTERM', () => stop('SIGTERM'));
}

main().catch((err: unknown) => {
  process.stderr.write(`s3rver: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
