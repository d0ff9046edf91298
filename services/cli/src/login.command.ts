import fs from 'node:fs';
import { CairnClient, UsageError } from './api-client.ts';
import { type ResolvedConfig, checkUrl, readConfigFile, resolveConfig, writeConfigFile } from './cli-config.ts';
import type { Opts } from './cli-options.ts';
import { printJson } from './output.ts';

export const LOGIN_USAGE = `  login --url URL --token TOKEN                  check the token against the gateway, then save both for later calls
                                                 (~/.config/cairn/config.json, or under $XDG_CONFIG_HOME; mode 0600)
  logout                                         remove the saved URL and token
  config                                         which URL and token a call would use, and where each comes from`;

/** `login`, `logout`, `config`: the saved connection settings. The token is never printed. */
export async function loginCommand(command: string, o: Opts): Promise<number> {
  if (command === 'config') {
    const c: ResolvedConfig = resolveConfig(o);
    const view = { url: c.url, urlSource: c.urlSource, tokenSource: c.tokenSource, configFile: c.configPath };
    if (o.json) printJson(view);
    else {
      console.log(`url:    ${c.url} (from ${c.urlSource})`);
      console.log(`token:  ${c.tokenSource ? `set (from ${c.tokenSource})` : 'none'}`);
      console.log(`config: ${c.configPath}${fs.existsSync(c.configPath) ? '' : ' (not written; cairn login writes it)'}`);
    }
    return 0;
  }
  const file = resolveConfig({}).configPath;
  if (command === 'logout') {
    fs.rmSync(file, { force: true });
    console.log(`removed ${file}`);
    return 0;
  }
  const url = o.url ?? process.env.CAIRN_URL ?? readConfigFile(file).url;
  if (!url) throw new UsageError('missing --url (e.g. http://127.0.0.1:8080)');
  checkUrl(url, '--url');
  const token = o.token ?? process.env.CAIRN_TOKEN;
  if (!token) throw new UsageError('missing --token (or CAIRN_TOKEN)');
  // One cheap call every token may make: a wrong URL or token is found now, not on the next command.
  await new CairnClient(url, token).request('GET', '/v1/instances?limit=1');
  writeConfigFile(file, { url, token });
  if (o.json) printJson({ url, configFile: file });
  else console.log(`logged in to ${url}; saved to ${file}`);
  return 0;
}
