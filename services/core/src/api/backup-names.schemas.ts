import { z } from 'zod';
import { Text } from './common.schemas.ts';
import { named } from './registry.ts';

/** Names, notes and pins of backups (issue 13). */

export const BACKUP_NAME_MAX = 100;
export const BACKUP_NOTE_MAX = 1000;
const NAME_CHARACTERS = /^[A-Za-z0-9_.:@+-]*$/;

/**
 * A backup's name: unique per instance among its backups that are not deleting or deleted. Each
 * rule has its own message, so a 400 names the rule that was broken.
 */
export const BackupName = z
  .string()
  .superRefine((v, ctx) => {
    const fail = (message: string) => ctx.addIssue({ code: 'custom', message });
    if (v.length === 0) fail('must not be empty');
    else if (v.length > BACKUP_NAME_MAX) fail(`must be at most ${BACKUP_NAME_MAX} characters (it has ${v.length})`);
    else if (!/^[A-Za-z0-9]/.test(v)) fail('must start with a letter or digit');
    else if (!NAME_CHARACTERS.test(v)) {
      const bad = [...v].find((c) => !NAME_CHARACTERS.test(c))!;
      fail(`may contain only letters, digits and _ . - : @ + (found ${JSON.stringify(bad)})`);
    }
  })
  .describe(`1-${BACKUP_NAME_MAX} letters, digits and _ . - : @ +, starting with a letter or digit; unique among the instance's backups that are not deleted`);

export const BackupNote = Text({ max: BACKUP_NOTE_MAX }, (v) =>
  /[\u0000-\u0008\u000b-\u001f\u007f]/.test(v) ? 'must not contain control characters (line breaks and tabs are fine)' : null,
).describe(`free text, up to ${BACKUP_NOTE_MAX} characters`);

export const UpdateBackupBody = named(
  'UpdateBackupRequest',
  z
    .object({
      name: BackupName.nullable().optional().describe('a new name (409 when another backup of the instance has it); null removes the name'),
      note: BackupNote.nullable().optional().describe('null removes the note'),
      pinned: z
        .boolean()
        .optional()
        .describe('true: never expired by retention, not counted against the manual limit, deletion refused (409) until false again'),
    })
    .strict()
    // Only for a body that is otherwise valid: an unknown field alone is reported as such.
    .refine((b) => Object.values(b).some((v) => v !== undefined), {
      message: 'nothing to change: give name, note or pinned',
      when: (payload) => payload.issues.length === 0,
    }),
);
export type UpdateBackupBody = z.infer<typeof UpdateBackupBody>;

/** `?pinned=true|false` (or 1/0); absent: pinned and unpinned. */
export const PinnedFlag = z
  .enum(['true', 'false', '1', '0'], { error: 'must be true or false' })
  .transform((v) => v === 'true' || v === '1')
  .optional();
