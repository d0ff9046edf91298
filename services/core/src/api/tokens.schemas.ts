import { z } from 'zod';
import { Cursor, Limit, NullableTimestamp, TenantName, Text, Timestamp, pageOf, queryFlag } from './common.schemas.ts';
import { named } from './registry.ts';

export const TokenRoleName = z.enum(['admin', 'member']);
export type TokenRoleName = z.infer<typeof TokenRoleName>;

export const CreateTokenBody = named(
  'CreateTokenRequest',
  z
    .object({
      name: Text({ min: 1, max: 100, trim: true }),
      role: TokenRoleName,
      tenant: TenantName.optional().describe('tenant name, created when new; required for members'),
    })
    .strict()
    .superRefine((b, ctx) => {
      if (b.role === 'member' && !b.tenant) ctx.addIssue({ code: 'custom', path: ['tenant'], message: 'a member token needs a tenant' });
    }),
);
export type CreateTokenBody = z.infer<typeof CreateTokenBody>;

export const TokenView = named(
  'Token',
  z.object({
    id: z.string(),
    name: z.string(),
    role: TokenRoleName,
    tenant: z.string().nullable(),
    createdAt: Timestamp,
    lastUsedAt: NullableTimestamp,
    revokedAt: NullableTimestamp,
  }),
);
export type TokenView = z.infer<typeof TokenView>;

export const CreatedToken = named('CreatedToken', TokenView.extend({ token: z.string().describe('the secret; shown only in this response') }));
export type CreatedToken = z.infer<typeof CreatedToken>;

export const TokenList = pageOf('TokenList', TokenView);
export type TokenList = z.infer<typeof TokenList>;

export const ListTokensQuery = z
  .object({ cursor: Cursor.optional(), limit: Limit, includeRevoked: queryFlag(false).describe('also list revoked tokens') })
  .strict();
export type ListTokensQuery = z.infer<typeof ListTokensQuery>;
