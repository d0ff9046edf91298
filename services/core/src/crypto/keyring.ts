/**
 * Key-encryption keys (issue 14): `CAIRN_MASTER_KEYS`, a comma-separated list of `id:base64`
 * pairs (32-byte keys), the first one active. A backup's data key is random, wrapped with
 * AES-256-GCM under the active key (additional data: backup id and key id), and the wrap is
 * recorded on the Backup row (`encryption`: mode, keyId, wrappedKey). Keys are never logged or
 * returned.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { CairnError } from '../errors.ts';

export interface BackupEncryption {
  mode: 'aes-256-gcm';
  keyId: string;
  /** base64(nonce ‖ wrapped key ‖ tag). */
  wrappedKey: string;
}

export type EncryptionField = BackupEncryption | { mode: 'none' };

const ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

export class Keyring {
  private constructor(
    private readonly keys: Map<string, Buffer>,
    readonly activeId: string,
  ) {}

  /** The ring from CAIRN_MASTER_KEYS; undefined when it is empty. Throws `config` naming what is wrong (never a key). */
  static parse(value: string | undefined): Keyring | undefined {
    const text = (value ?? '').trim();
    if (!text) return undefined;
    const keys = new Map<string, Buffer>();
    let first: string | undefined;
    for (const [i, part] of text.split(',').entries()) {
      const colon = part.indexOf(':');
      const id = colon > 0 ? part.slice(0, colon).trim() : '';
      if (!ID.test(id)) throw new CairnError('config', `CAIRN_MASTER_KEYS entry ${i + 1} must be <id>:<base64 key>, with an id of letters, digits, _ . -`);
      const key = Buffer.from(part.slice(colon + 1).trim(), 'base64');
      if (key.length !== 32) throw new CairnError('config', `CAIRN_MASTER_KEYS key ${id} must be 32 bytes (base64), it is ${key.length}`);
      if (keys.has(id)) throw new CairnError('config', `CAIRN_MASTER_KEYS names key ${id} twice`);
      keys.set(id, key);
      first ??= id;
    }
    return new Keyring(keys, first!);
  }

  get ids(): string[] {
    return [...this.keys.keys()];
  }

  has(id: string): boolean {
    return this.keys.has(id);
  }

  /** A fresh data key for one upload attempt of `backupId`, and its wrap under the active key. */
  newDataKey(backupId: string): { key: Buffer; encryption: BackupEncryption } {
    const key = randomBytes(32);
    return { key, encryption: this.wrap(key, backupId) };
  }

  wrap(dataKey: Buffer, backupId: string, keyId = this.activeId): BackupEncryption {
    const kek = this.keys.get(keyId);
    if (!kek) throw new CairnError('config', `master key ${keyId} is not in CAIRN_MASTER_KEYS`);
    const nonce = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', kek, nonce);
    c.setAAD(Buffer.from(`cairn-dek\0${backupId}\0${keyId}`));
    const wrapped = Buffer.concat([nonce, c.update(dataKey), c.final(), c.getAuthTag()]);
    return { mode: 'aes-256-gcm', keyId, wrappedKey: wrapped.toString('base64') };
  }

  /** The data key of `backupId`; fails early naming the key id when the ring does not hold it. */
  unwrap(enc: BackupEncryption, backupId: string): Buffer {
    const kek = this.keys.get(enc.keyId);
    if (!kek)
      throw new CairnError('config', `backup ${backupId} is encrypted under master key ${enc.keyId}, which is not in CAIRN_MASTER_KEYS`, { permanent: true });
    const raw = Buffer.from(enc.wrappedKey, 'base64');
    try {
      const d = createDecipheriv('aes-256-gcm', kek, raw.subarray(0, 12));
      d.setAAD(Buffer.from(`cairn-dek\0${backupId}\0${enc.keyId}`));
      d.setAuthTag(raw.subarray(raw.length - 16));
      return Buffer.concat([d.update(raw.subarray(12, raw.length - 16)), d.final()]);
    } catch (err) {
      throw new CairnError('checksum-mismatch', `the data key of backup ${backupId} does not unwrap under master key ${enc.keyId}`, { cause: err });
    }
  }
}

/** The row's `encryption` field when it says the backup is encrypted. */
export function encryptionOf(field: unknown): BackupEncryption | undefined {
  const e = field as Partial<BackupEncryption> | null;
  return e?.mode === 'aes-256-gcm' && typeof e.keyId === 'string' && typeof e.wrappedKey === 'string' ? (e as BackupEncryption) : undefined;
}
