// Renders a command's usage from its definition. Colour is the caller's decision (src/ui/color.js);
// the layout is the same with and without it, so piped help is the coloured help minus the escapes.

import type { ArgDef, ArgsDef, CommandDef, CommandMeta } from 'citty';
import { styleFor, type Style } from '../ui/style.ts';

/** The command tree is plain objects (see commands/): usage and argument checks never load code. */
export function metaOf(cmd: CommandDef): CommandMeta {
  return plain(cmd.meta, 'meta') ?? {};
}

export function argsOf(cmd: CommandDef): ArgsDef {
  return plain(cmd.args, 'args') ?? {};
}

export function subCommandsOf(cmd: CommandDef): Record<string, CommandDef> | undefined {
  return plain(cmd.subCommands, 'subCommands') as Record<string, CommandDef> | undefined;
}

function plain<T>(value: T | Promise<T> | (() => T) | (() => Promise<T>) | undefined, what: string): T | undefined {
  if (typeof value === 'function' || value instanceof Promise) throw new Error(`command ${what} must be a plain object (the tree is read without running code)`);
  return value;
}

/** A boolean whose `--no-` form is documented: on by default, or given a negative description. */
export function hasNegation(def: ArgDef): boolean {
  return def.type === 'boolean' && (def.default === true || def.negativeDescription !== undefined);
}

/** `-i` for --inventory; one-letter aliases are short options. */
export function aliasesOf(def: ArgDef): string[] {
  const alias = 'alias' in def ? def.alias : undefined;
  return alias === undefined ? [] : Array.isArray(alias) ? alias : [alias];
}

/** `-i, --inventory=<FILE>` as help shows it. */
function optionLabel(name: string, def: ArgDef): string {
  const names = [...aliasesOf(def).map((a) => (a.length === 1 ? `-${a}` : `--${a}`)), `--${name}`];
  const hint = def.type === 'string' || def.type === 'enum' ? `=<${def.valueHint ?? name.toUpperCase()}>` : '';
  return names.join(', ') + hint;
}

function columns(rows: Array<[string, string]>, s: Style): string {
  const width = Math.max(...rows.map(([left]) => left.length));
  return rows.map(([left, right]) => `  ${s.cyan(left)}${right ? ' '.repeat(width - left.length + 2) + right : ''}`).join('\n');
}

export interface UsageOptions {
  /** Command names from the root, e.g. ['farm', 'inventory', 'check']. */
  path: string[];
  version: string;
  color: boolean;
}

export function renderUsage(cmd: CommandDef, opts: UsageOptions): string {
  const s = styleFor(opts.color);
  const meta = metaOf(cmd);
  const args = Object.entries(argsOf(cmd));
  const subs = subCommandsOf(cmd);
  const name = opts.path.join(' ');
  const isRoot = opts.path.length === 1;

  const positionals = args.filter(([, d]) => d.type === 'positional');
  const options = args.filter(([, d]) => d.type !== 'positional');
  const optionRows: Array<[string, string]> = [];
  for (const [n, d] of options) {
    const notes = [d.default !== undefined && d.type !== 'boolean' ? s.dim(`(default: ${String(d.default)})`) : ''];
    optionRows.push([optionLabel(n, d), [d.description ?? '', ...notes].filter(Boolean).join(' ')]);
    if (hasNegation(d)) optionRows.push([`--no-${n}`, (d.type === 'boolean' && d.negativeDescription) || '']);
  }
  optionRows.push(['-h, --help', 'Show this help']);
  if (isRoot) optionRows.push(['-v, --version', 'Print the version']);

  const line = [name];
  if (subs) line.push(`<${Object.keys(subs).join('|')}>`);
  for (const [n, d] of positionals) line.push(d.required === false ? `[${d.valueHint ?? n.toUpperCase()}]` : `<${d.valueHint ?? n.toUpperCase()}>`);
  if (options.length) line.push('[OPTIONS]');

  const out = [s.dim(`${meta.description ?? ''} (${name} v${opts.version})`), '', `${s.underline(s.bold('USAGE'))} ${s.cyan(line.join(' '))}`, ''];
  if (positionals.length) {
    out.push(s.underline(s.bold('ARGUMENTS')), '');
    out.push(columns(positionals.map(([n, d]) => [d.valueHint ?? n.toUpperCase(), d.description ?? '']), s), '');
  }
  out.push(s.underline(s.bold('OPTIONS')), '', columns(optionRows, s), '');
  if (subs) {
    out.push(s.underline(s.bold('COMMANDS')), '');
    out.push(columns(Object.entries(subs).map(([n, sub]) => [n, metaOf(sub).description ?? '']), s), '');
    out.push(`Use ${s.cyan(`${name} <command> --help`)} for more about a command.`);
  }
  return out.join('\n').replace(/\n+$/, '') + '\n';
}
