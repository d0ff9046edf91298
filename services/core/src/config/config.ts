import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { Keyring } from '../crypto/keyring.ts';
import { CairnError } from '../errors.ts';
import { parseDuration } from './duration.ts';

/**
 * The whole environment of SPEC §13, parsed and validated once at start. Every bad variable is
 * reported in one message. Defaults are local ones so that `npm start` works on a fresh machine.
 */
const bool = z
  .string()
  .trim()
  .toLowerCase()
  .refine((v) => ['true', 'false', '1', '0', 'yes', 'no'].includes(v), 'must be true or false')
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

const int = (min: number, max = Number.MAX_SAFE_INTEGER) =>
  z
    .string()
    .trim()
    .regex(/^\d+$/, 'must be a whole number')
    .transform(Number)
    .refine((n) => n >= min && n <= max, `must be between ${min} and ${max}`);

/** Byte sizes: `4194304`, `4MiB`, `1m`, `512k`. */
const bytes = (min: number, max: number) =>
  z
    .string()
    .trim()
    .regex(/^\d+\s*([kmg]i?b?)?$/i, 'must be a byte size such as 4MiB or 1048576')
    .transform((v) => {
      const m = /^(\d+)\s*([kmg])?/i.exec(v)!;
      const unit = { k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[(m[2] ?? '').toLowerCase() as 'k'] ?? 1;
      return Number(m[1]) * unit;
    })
    .refine((n) => n >= min && n <= max, `must be between ${min} and ${max} bytes`);

const url = (protocols: string[]) =>
  z
    .string()
    .trim()
    .refine(
      (v) => {
        try {
          return protocols.includes(new URL(v).protocol);
        } catch {
          return false;
        }
      },
      `must be a URL (${protocols.join(' or ')})`,
    );

/** A share between 0 and 1: `0.01`, `0`, `1`. */
const share = z
  .string()
  .trim()
  .regex(/^(0(\.\d+)?|1(\.0+)?|\.\d+)$/, 'must be a number between 0 and 1, such as 0.01')
  .transform(Number);

/** A duration such as `90s`, `5m` or plain milliseconds, at least `minMs` (config/duration.ts). */
const duration = (minMs: number, example: string) =>
  z
    .string()
    .trim()
    .refine((v) => (parseDuration(v) ?? -1) >= minMs, `must be a duration of at least ${minMs / 1000}s, such as ${example}`)
    .transform((v) => parseDuration(v)!);

/** Defaults of the incremental backup settings, for the callers that are given no config of them (tests). */
export const DEFAULT_FULL_BACKUP_EVERY = 7;
export const DEFAULT_INCREMENTAL_REHASH_SHARE = 0.01;

const list = z.string().transform((v) =>
  v
    .split(/[,:]/)
    .map((s) => s.trim())
    .filter(Boolean),
);

const schema = z.object({
  DATABASE_URL: url(['postgresql:', 'postgres:']).default('postgresql://postgres@127.0.0.1:5432/cairn'),
  REDIS_URL: url(['redis:', 'rediss:']).default('redis://127.0.0.1:6379'),
  QUEUE_PREFIX: z.string().trim().min(1).default('{cairn}'),
  S3_ENDPOINT: z.union([z.literal(''), url(['http:', 'https:'])]).default(''),
  S3_REGION: z.string().trim().min(1).default('us-east-1'),
  S3_BUCKET: z
    .string()
    .trim()
    .regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'must be a valid S3 bucket name')
    .default('cairn'),
  S3_PREFIX: z
    .string()
    .trim()
    .regex(/^[A-Za-z0-9!_.*'()/-]*$/, "may only contain letters, digits and !_.*'()/-")
    .transform((v) => v.replace(/^\/+|\/+$/g, ''))
    .default(''),
  S3_ACCESS_KEY_ID: z.string().default('S3RVER'),
  S3_SECRET_ACCESS_KEY: z.string().default('S3RVER'),
  S3_FORCE_PATH_STYLE: bool.default(true),
  S3_CHECKSUM_MODE: z.enum(['WHEN_SUPPORTED', 'WHEN_REQUIRED']).default('WHEN_REQUIRED'),
  // The first parts' size: one upload holds (queue + 1) parts, uploads at once share max(queue + 1,
  // 2 each) (s3-upload.ts PartBufferPool; issue 17).
  // Parts double every 1,000 so any archive fits in S3's 10,000 (s3-upload.ts PARTS_PER_SIZE).
  S3_PART_SIZE: bytes(5 * 1024 ** 2, 5 * 1024 ** 3).default(6 * 1024 ** 2),
  // A request whose response has not begun this long after it was sent, or a connection silent
  // this long mid-transfer, is abandoned and retried: a stalled transfer never hangs its job.
  S3_REQUEST_TIMEOUT: duration(1000, '15m').default(15 * 60_000),
  S3_SOCKET_TIMEOUT: duration(1000, '60s').default(60_000),
  // Parts of one multipart upload in flight while packing goes on (memory ~ part size × (this + 1)).
  S3_UPLOAD_QUEUE_SIZE: int(1, 64).default(2),
  // Restores read the archive as ranges of whole frames, several at once, in order (issue 17).
  RESTORE_PARALLEL_RANGES: int(1, 64).default(4),
  RESTORE_RANGE_SIZE: bytes(64 * 1024, 256 * 1024 ** 2).default(8 * 1024 ** 2),
  RESTORE_BYTES_IN_FLIGHT: bytes(1024 ** 2, 4 * 1024 ** 3).default(32 * 1024 ** 2),
  // Backups' uploads and restores' range reads made by the store thread, so their bytes stay out of the main thread's heap.
  STORE_THREAD: bool.default(true),
  NODE_ID: z
    .string()
    .trim()
    .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/, 'must be 1-63 letters, digits, _ . - (no ":")')
    .default(os.hostname().replace(/[^A-Za-z0-9_.-]/g, '-')),
  VOLUME_ROOTS: list
    .refine((roots) => roots.every((r) => path.isAbsolute(r)), 'every root must be an absolute path')
    .transform((roots) => roots.map((r) => path.resolve(r)))
    .default([path.resolve('.cairn/volumes')]),
  // Node worker: the hooks file (JSON, command name -> {argv, env?, cwd?}) whose commands instances' command hooks may name (issue 13).
  CAIRN_NODE_HOOKS: z.string().trim().default(''),
  CAIRN_DATA_DIR: z.string().trim().min(1).default('.cairn'),
  PORT: int(0, 65535).default(8080),
  // Workers (issue 15): their own Prometheus /metrics on HOST:WORKER_METRICS_PORT (empty: not served).
  WORKER_METRICS_PORT: int(0, 65535).optional(),
  HOST: z.string().trim().min(1).default('127.0.0.1'),
  CAIRN_ADMIN_TOKEN: z
    .string()
    .trim()
    .refine((v) => v === '' || v.length >= 24, 'must be at least 24 characters')
    .default(''),
  // Signs download links (issue 15); when unset, derived from CAIRN_ADMIN_TOKEN (download-link.service.ts).
  DOWNLOAD_LINK_SECRET: z
    .string()
    .trim()
    .refine((v) => v === '' || v.length >= 32, 'must be at least 32 characters')
    .default(''),
  // The single key of earlier drafts is gone: a keyring replaces it (rotation needs ids). Setting
  // it stops the process at start, so nobody believes it encrypts anything.
  CAIRN_MASTER_KEY: z
    .string()
    .trim()
    .refine((v) => v === '', 'CAIRN_MASTER_KEY is replaced by CAIRN_MASTER_KEYS (<id>:<base64 32-byte key>[,...]); unset it')
    .default(''),
  // Encryption at rest (issue 14): when set, every new backup is encrypted under the first key.
  CAIRN_MASTER_KEYS: z
    .string()
    .trim()
    .superRefine((v, ctx) => {
      try {
        Keyring.parse(v);
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: (err as Error).message });
      }
    })
    .default(''),
  WORKER_CONCURRENCY: int(1, 64).default(2),
  // V8's --optimize-for-size in a process running a node worker (memory-flags.ts): ~45 MiB less at
  // the peak of two backups, for slower restores and backups (bench:e2e: ~25% and ~15%).
  WORKER_OPTIMIZE_FOR_SIZE: bool.default(true),
  // V8's --heap-growing-percent there (0: V8's own). 100: without it, --optimize-for-size made the
  // main thread mark its heap without pause through a restore of many files (memory-flags.ts).
  WORKER_HEAP_GROWING_PERCENT: int(0, 1000).default(100),
  // 1 MiB: what the benchmark measures, a few MiB in flight per pack, and a one-file restore
  // reads at most a couple of MiB of blocks.
  ARCHIVE_BLOCK_SIZE: bytes(64 * 1024, 64 * 1024 ** 2).default(1024 ** 2),
  COMPRESSION: z.enum(['zstd', 'gzip', 'none']).default('zstd'),
  COMPRESSION_LEVEL: int(1, 19).default(3),
  MANUAL_BACKUP_LIMIT: int(1, 100_000).default(20),
  // Incremental backups (SPEC §5): an `auto` backup is a full one every FULL_BACKUP_EVERY backups
  // of a chain (1: always full), and an incremental one re-reads this share of the files it
  // finds unchanged to compare their sha256 (0: never, 1: all).
  FULL_BACKUP_EVERY: int(1, 10_000).default(DEFAULT_FULL_BACKUP_EVERY),
  INCREMENTAL_REHASH_SHARE: share.default(DEFAULT_INCREMENTAL_REHASH_SHARE),
  // Verify / scrub (issue 14): the control worker verifies completed backups every VERIFY_EVERY
  // (empty: never), the least recently verified first, at VERIFY_LEVEL, until a run has read
  // VERIFY_BYTES_BUDGET from S3.
  VERIFY_EVERY: z
    .string()
    .trim()
    .refine((v) => v === '' || (parseDuration(v) ?? 0) >= 60_000, 'must be a duration of at least 1m, such as 24h or 30m (empty: off)')
    .transform((v): number | null => (v === '' ? null : parseDuration(v)!))
    .default(null),
  VERIFY_LEVEL: z.enum(['quick', 'sample', 'full']).default('sample'),
  VERIFY_BYTES_BUDGET: bytes(1, Number.MAX_SAFE_INTEGER).default(10 * 1024 ** 3),
  // Faults and reconciliation (issue 16): a job's state writes keep trying for DB_OUTAGE_TOLERANCE
  // while Postgres is unreachable; every RECONCILE_EVERY the control worker (and a node worker after
  // a Redis reconnect) looks for jobs lost from the queue (queued ones once older than
  // LOST_JOB_GRACE) or held by a node silent for NODE_DEAD_AFTER, and re-enqueues or settles them.
  DB_OUTAGE_TOLERANCE: duration(1000, '15m').default(15 * 60_000),
  RECONCILE_EVERY: duration(1000, '30s').default(30_000),
  LOST_JOB_GRACE: duration(1000, '30s').default(30_000),
  // Above the node heartbeat period (10 s) with room for a slow beat.
  NODE_DEAD_AFTER: duration(15_000, '90s').default(90_000),
  BODY_LIMIT: bytes(1024, 64 * 1024 ** 2).default(1024 ** 2),
  // Progress streams (issue 17): open streams one token may hold in one gateway (429 beyond), and
  // how often watched jobs are re-read when no change notice arrives.
  JOB_STREAMS_PER_TOKEN: int(1, 10_000).default(20),
  JOB_STREAM_POLL_MS: int(50, 600_000).default(5000),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

export type Config = z.output<typeof schema>;
export type Env = Record<string, string | undefined>;

/** Parses the environment; throws one CairnError('config') listing every bad variable. */
export function loadConfig(env: Env = process.env): Config {
  // Empty strings mean "unset" for optional variables, as in most twelve-factor setups.
  const input = Object.fromEntries(Object.keys(schema.shape).map((k) => [k, env[k] === '' ? undefined : env[k]]));
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const problems = result.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
  throw new CairnError('config', `invalid configuration:\n  ${problems.join('\n  ')}`, { details: problems });
}

/** A copy of the config safe to log: secrets and credentials in URLs are masked. */
export function redactConfig(config: Config): Record<string, unknown> {
  const mask = (v: string) => (v ? '***' : '');
  const maskUrl = (v: string) => {
    try {
      const u = new URL(v);
      if (u.password) u.password = '***';
      return u.toString();
    } catch {
      return v;
    }
  };
  return {
    ...config,
    DATABASE_URL: maskUrl(config.DATABASE_URL),
    REDIS_URL: maskUrl(config.REDIS_URL),
    S3_SECRET_ACCESS_KEY: mask(config.S3_SECRET_ACCESS_KEY),
    CAIRN_ADMIN_TOKEN: mask(config.CAIRN_ADMIN_TOKEN),
    DOWNLOAD_LINK_SECRET: mask(config.DOWNLOAD_LINK_SECRET),
    CAIRN_MASTER_KEY: mask(config.CAIRN_MASTER_KEY),
    CAIRN_MASTER_KEYS: mask(config.CAIRN_MASTER_KEYS),
  };
}
