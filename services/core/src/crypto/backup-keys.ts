/**
 * The data keys reading a backup needs (issue 14): its own, for its index and its own frames, and
 * those of the backups whose archive objects it reads frames from (an incremental), each unwrapped
 * from its Backup row with the keyring. A key the ring lacks fails early, naming its id.
 */
import { pipeline, PassThrough, type Readable } from 'node:stream';
import type { ArchiveIndexHead, FrameOpener } from '../archive/archive-types.ts';
import { CairnError } from '../errors.ts';
import type { Backup, BackupRecords } from '../records/records.ts';
import { encryptionOf, Keyring } from './keyring.ts';
import { openFrame, openIndexStream } from './sealing.ts';

const rings = new Map<string, Keyring | undefined>();

/** The keyring of CAIRN_MASTER_KEYS (parsed once per value); undefined when it is not set. */
export function keyringOf(config: { CAIRN_MASTER_KEYS?: string }): Keyring | undefined {
  const value = config.CAIRN_MASTER_KEYS ?? '';
  if (!rings.has(value)) rings.set(value, Keyring.parse(value));
  return rings.get(value);
}

function ring(keyring: Keyring | undefined, backup: Pick<Backup, 'id'>): Keyring {
  if (!keyring) throw new CairnError('config', `backup ${backup.id} is encrypted: set CAIRN_MASTER_KEYS with the key it was encrypted under`);
  return keyring;
}

/** The backup's data key; undefined for a backup that is not encrypted. */
export function dataKeyOf(keyring: Keyring | undefined, backup: Pick<Backup, 'id' | 'encryption'>): Buffer | undefined {
  const enc = encryptionOf(backup.encryption);
  return enc ? ring(keyring, backup).unwrap(enc, backup.id) : undefined;
}

/** The stored index object as the index's own bytes: opened when the backup is encrypted. */
export function openIndexObject(keyring: Keyring | undefined, backup: Pick<Backup, 'id' | 'encryption'>, stored: Readable): Readable {
  const key = dataKeyOf(keyring, backup);
  if (!key) return stored;
  const out = new PassThrough();
  pipeline(stored, openIndexStream(key, backup.id), out, () => undefined);
  return out;
}

/** Opens the frames of `backup`'s archive (its own, and those it reads from other backups); undefined when not encrypted. */
export async function frameOpenerFor(
  keyring: Keyring | undefined,
  backups: Pick<BackupRecords, 'get'>,
  backup: Pick<Backup, 'id' | 'encryption'>,
  index: Pick<ArchiveIndexHead, 'encryption' | 'objects'>,
): Promise<FrameOpener | undefined> {
  if (!index.encryption) return undefined;
  const keys = new Map<string, Buffer>();
  const own = dataKeyOf(ring(keyring, backup), backup);
  if (!own) throw new CairnError('archive-corrupt', `backup ${backup.id} has an encrypted archive but no data key recorded`);
  keys.set(backup.id, own);
  for (const owner of index.objects ?? []) {
    if (keys.has(owner)) continue;
    const row = await backups.get(owner);
    if (!row) throw new CairnError('archive-missing', `backup ${owner}, whose archive backup ${backup.id} reads from, has no record (its data key is unknown)`);
    const key = dataKeyOf(keyring, row);
    if (!key) throw new CairnError('archive-corrupt', `backup ${owner} holds frames of encrypted backup ${backup.id} but is not encrypted`);
    keys.set(owner, key);
  }
  return (block, sealed) => {
    const object = block.object ?? backup.id;
    const key = keys.get(object);
    if (!key) throw new CairnError('archive-corrupt', `frame in backup ${object}'s archive, which backup ${backup.id}'s index does not list`);
    return openFrame(key, object, block.compressedOffset, sealed, block.last === true);
  };
}
