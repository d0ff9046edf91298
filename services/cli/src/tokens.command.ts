import { type CairnClient, UsageError } from './api-client.ts';
import type { CreatedToken, Page, Row } from './api-responses.ts';
import { type Opts, enc, need, query } from './cli-options.ts';
import { printJson, printTable } from './output.ts';

export const TOKENS_USAGE = `  tokens [list] [--include-revoked]              API tokens (admin)
  tokens create --name N --role admin|member [--tenant T]
                                                 make a token; its secret is printed once (a member token needs --tenant)
  tokens revoke <tokenId>`;

/** `tokens list|create|revoke` (admin). The secret of a new token is printed once, as the API answers it once. */
export async function tokensCommand(client: CairnClient, args: string[], o: Opts): Promise<number> {
  const [sub = 'list', id] = args;
  switch (sub) {
    case 'list': {
      const page = await client.request<Page<Row>>('GET', `/v1/tokens${query({ includeRevoked: o['include-revoked'] ? 'true' : undefined, limit: '500' })}`);
      if (o.json) printJson(page);
      else printTable(page.items, ['id', 'name', 'role', 'tenant', 'createdAt', 'lastUsedAt', 'revokedAt']);
      return 0;
    }
    case 'create': {
      const role = need(o.role, '--role (admin or member)');
      if (role !== 'admin' && role !== 'member') throw new UsageError('--role must be admin or member');
      const token = await client.request<CreatedToken>('POST', '/v1/tokens', { name: need(o.name, '--name'), role, ...(o.tenant ? { tenant: o.tenant } : {}) });
      if (o.json) printJson(token);
      else {
        console.error(`token ${token.id} (${token.role}${token.tenant ? ` of tenant ${token.tenant}` : ''}) created; its secret is shown only now:`);
        console.log(token.token);
      }
      return 0;
    }
    case 'revoke': {
      const token = await client.request<{ id: string }>('DELETE', `/v1/tokens/${enc(need(id, 'token id'))}`);
      if (o.json) printJson(token);
      else console.log(`token ${token.id} revoked`);
      return 0;
    }
    default:
      throw new UsageError(`unknown tokens command ${sub} (list, create, revoke)`);
  }
}
