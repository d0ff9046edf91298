import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { CairnError, type Logger } from '@cairn/core';

/**
 * The commands an admin allows hooks to run on one node: the node worker's hooks file
 * (`CAIRN_NODE_HOOKS`), a JSON object of name → `{argv, env?, cwd?}`. An instance's command hook
 * names one of them; nothing else can ever be run, and never through a shell. The file is read at
 * start (a bad one stops the worker) and again when it changes (seen at each heartbeat: a bad
 * change is logged and the previous commands stay).
 */

export const HookCommandName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/, 'must be 1-63 letters, digits, _ . - starting with a letter or digit');

const HookCommandDef = z
  .object({
    argv: z
      .array(z.string().min(1).max(4096))
      .min(1)
      .max(256)
      .refine((a) => a.length === 0 || path.isAbsolute(a[0]!) || !a[0]!.includes('/'), 'argv[0] must be an absolute path or a program name looked up in PATH'),
    env: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name'), z.string()).optional(),
    cwd: z
      .string()
      .refine((p) => path.isAbsolute(p), 'must be an absolute path')
      .optional(),
  })
  .strict();
export type HookCommandDef = z.infer<typeof HookCommandDef>;

const HooksFile = z.record(HookCommandName, HookCommandDef);

/** Parses a hooks file's text; throws a CairnError('config') naming every problem and the file. */
export function parseHookCommands(text: string, file: string): Map<string, HookCommandDef> {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new CairnError('config', `hooks file ${file} is not JSON: ${(err as Error).message}`);
  }
  if (!json || typeof json !== 'object' || Array.isArray(json))
    throw new CairnError('config', `hooks file ${file} must be a JSON object of command name -> {argv, env?, cwd?}`);
  const result = HooksFile.safeParse(json);
  if (!result.success) {
    const problems = result.error.issues.map((i) => `${i.path.join('.') || '(file)'}: ${i.message}`);
    throw new CairnError('config', `invalid hooks file ${file}:\n  ${problems.join('\n  ')}`, { details: problems });
  }
  return new Map(Object.entries(result.data));
}

/** The commands of one node worker's hooks file; empty when CAIRN_NODE_HOOKS is not set. */
export class HookCommands {
  private commands = new Map<string, HookCommandDef>();
  private mtimeMs: number | null = null;

  private constructor(readonly file: string | null) {}

  /** No hooks file: no command hook can run on this node. */
  static none(): HookCommands {
    return new HookCommands(null);
  }

  /** Reads `file` (CAIRN_NODE_HOOKS; empty: none). A missing or invalid file throws: the worker does not start with it. */
  static load(file: string): HookCommands {
    if (!file) return HookCommands.none();
    const commands = new HookCommands(path.resolve(file));
    commands.read();
    return commands;
  }

  /** Commands given directly (tests). */
  static of(defs: Record<string, HookCommandDef>): HookCommands {
    const commands = new HookCommands(null);
    commands.commands = new Map(Object.entries(defs));
    return commands;
  }

  names(): string[] {
    return [...this.commands.keys()].sort();
  }

  get(name: string): HookCommandDef | undefined {
    return this.commands.get(name);
  }

  /** Re-reads the file when it changed; a file that became unreadable or invalid is logged and the commands stay as they were. */
  refresh(logger: Logger): void {
    if (!this.file) return;
    try {
      const mtimeMs = fs.statSync(this.file).mtimeMs;
      if (mtimeMs === this.mtimeMs) return;
      const before = this.names().join(',');
      this.read();
      if (this.names().join(',') !== before) logger.info({ file: this.file, commands: this.names() }, 'hooks file reloaded');
    } catch (err) {
      logger.warn({ file: this.file, err: (err as Error).message }, 'hooks file could not be reloaded; keeping the commands read before');
    }
  }

  private read(): void {
    const file = this.file!;
    let text: string;
    let mtimeMs: number;
    try {
      mtimeMs = fs.statSync(file).mtimeMs;
      text = fs.readFileSync(file, 'utf8');
    } catch (err) {
      throw new CairnError('config', `hooks file ${file} (CAIRN_NODE_HOOKS) cannot be read: ${(err as Error).message}`);
    }
    this.commands = parseHookCommands(text, file);
    this.mtimeMs = mtimeMs;
  }
}
