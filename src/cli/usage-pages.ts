// Every command's usage page, plain and coloured: what bin/usage.json holds for bin/fast-path.js.
// Regenerate with: node bin/tsnode.js src/cli/write-usage.ts (a unit test says when it is stale).

import type { CommandDef } from 'citty';
import { usageKey } from '../../bin/fast-path.js';
import { root } from './commands/index.ts';
import { VERSION } from './version.ts';
import { renderUsage, subCommandsOf } from './usage.ts';

export interface UsagePage {
  plain: string;
  color: string;
  /** A command group's commands; absent on commands that run. */
  commands?: string[];
}

export interface UsageFile {
  key: string;
  pages: Record<string, UsagePage>;
}

export function usagePages(): UsageFile {
  const pages: Record<string, UsagePage> = {};
  const visit = (cmd: CommandDef, path: string[]) => {
    const subs = subCommandsOf(cmd);
    pages[path.join(' ')] = {
      plain: renderUsage(cmd, { path, version: VERSION, color: false }),
      color: renderUsage(cmd, { path, version: VERSION, color: true }),
      ...(subs ? { commands: Object.keys(subs) } : {}),
    };
    for (const [name, sub] of Object.entries(subs ?? {})) visit(sub, [...path, name]);
  };
  visit(root, ['farm']);
  return { key: usageKey(), pages };
}
