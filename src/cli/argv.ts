// Reads a command line against the command tree, strictly: an unknown command, an unknown option,
// an option without its value, a repeated option or an argument the command does not take is a
// usage error (exit 2) with the closest real spelling, before anything runs. What passes is
// handed to citty in one canonical spelling, so citty's lenient parser sees only what was checked.

import { parseArgs } from 'node:util';
import type { ArgDef, ArgsDef, CommandDef } from 'citty';
import { FarmError } from '../core/errors.ts';
import { closest } from '../inventory/suggest.ts';
import { aliasesOf, argsOf, hasNegation, subCommandsOf } from './usage.ts';

export class UsageError extends FarmError {
  /** The command whose usage applies, e.g. ['farm', 'build']. */
  readonly path: string[];

  constructor(path: string[], message: string, opts: { hint?: string } = {}) {
    super('USAGE', message, { hint: opts.hint ?? `\`${path.join(' ')} --help\` shows what it takes` });
    this.name = 'UsageError';
    this.path = path;
  }
}

/** What a command's run gets in citty's `data`: the options given on the command line. */
export interface RunData {
  given: ReadonlySet<string>;
}

export type Request =
  | { kind: 'version' }
  | { kind: 'help'; path: string[]; cmd: CommandDef }
  /** A command group was given no command (bare `farm`): its usage goes to stderr, exit 2. */
  | { kind: 'usage'; path: string[]; cmd: CommandDef }
  | { kind: 'run'; path: string[]; cmd: CommandDef; argv: string[]; data: RunData };

const HELP = ['--help', '-h'];
const VERSION = ['--version', '-v'];

const didYouMean = (input: string, candidates: string[]) => {
  const best = closest(input, candidates);
  return best ? ` (did you mean ${best}?)` : '';
};

/** Follows the command words; stops at the first word that is not a command of a group. */
function descend(root: CommandDef, argv: string[], strict: boolean): { path: string[]; cmd: CommandDef; rest: string[] } {
  const path = ['farm'];
  let cmd = root;
  let i = 0;
  for (let subs = subCommandsOf(cmd); subs; subs = subCommandsOf(cmd)) {
    const word = argv[i];
    if (word === undefined || word.startsWith('-')) break;
    const next = subs[word];
    if (!next) {
      if (!strict) break;
      throw new UsageError(path, `unknown command '${word}' for ${path.join(' ')}${didYouMean(word, Object.keys(subs))}`, {
        hint: `${path.join(' ')} has: ${Object.keys(subs).join(', ')}`,
      });
    }
    path.push(word);
    cmd = next;
    i++;
  }
  return { path, cmd, rest: argv.slice(i) };
}

export function readArgv(root: CommandDef, argv: string[]): Request {
  const end = argv.indexOf('--');
  const beforeEnd = end === -1 ? argv : argv.slice(0, end);
  if (beforeEnd.some((a) => HELP.includes(a))) {
    const { path, cmd } = descend(root, beforeEnd, true);
    return { kind: 'help', path, cmd };
  }
  if (VERSION.includes(argv[0] ?? '')) {
    if (argv.length > 1) throw new UsageError(['farm'], `${argv[0]} takes nothing else; unexpected '${argv[1]}'`);
    return { kind: 'version' };
  }
  const { path, cmd, rest } = descend(root, argv, true);
  const subs = subCommandsOf(cmd);
  if (subs) {
    if (rest.length === 0) return { kind: 'usage', path, cmd };
    const opt = rest[0]!;
    const candidates = path.length === 1 ? [...HELP, ...VERSION] : HELP;
    const suggestion = didYouMean(opt, candidates);
    throw new UsageError(path, `unknown option '${opt}' for ${path.join(' ')}${suggestion || `: give a command first (${Object.keys(subs).join(', ')})`}`);
  }
  const { argv: canonical, given } = checkOptions(path, argsOf(cmd), rest);
  return { kind: 'run', path, cmd, argv: canonical, data: { given } };
}

interface OptionName {
  /** The option as the command defines it. */
  name: string;
  def: ArgDef;
  negated: boolean;
}

/** Checks a leaf command's arguments; returns them in the one spelling handed to citty. */
export function checkOptions(path: string[], defs: ArgsDef, args: string[]): { argv: string[]; given: Set<string> } {
  const who = path.join(' ');
  const names = new Map<string, OptionName>();
  const config: Record<string, { type: 'string' | 'boolean'; short?: string }> = {};
  for (const [name, def] of Object.entries(defs)) {
    if (def.type === 'positional') continue;
    const type = def.type === 'boolean' ? 'boolean' : 'string';
    const aliases = aliasesOf(def);
    const short = aliases.find((a) => a.length === 1);
    config[name] = { type, ...(short ? { short } : {}) };
    names.set(name, { name, def, negated: false });
    for (const a of aliases.filter((x) => x.length > 1)) {
      config[a] = { type };
      names.set(a, { name, def, negated: false });
    }
    if (hasNegation(def)) {
      config[`no-${name}`] = { type: 'boolean' };
      names.set(`no-${name}`, { name, def, negated: true });
    }
  }
  const spellings = [...names.keys()].map((n) => `--${n}`);
  const { tokens } = parseArgs({ args, options: config, strict: false, allowPositionals: true, tokens: true });

  const given = new Set<string>();
  const options: string[] = [];
  const positionals: string[] = [];
  for (const t of tokens) {
    if (t.kind === 'positional') {
      positionals.push(t.value);
      continue;
    }
    if (t.kind === 'option-terminator') continue;
    const known = names.get(t.name);
    if (!known) {
      const bare = t.rawName.replace(/^--no-/, '');
      const plainBoolean = t.rawName.startsWith('--no-') && defs[bare]?.type === 'boolean';
      throw new UsageError(
        path,
        plainBoolean
          ? `unknown option '${t.rawName}' for ${who}: --${bare} is off unless given, so leave both out`
          : `unknown option '${t.rawName}' for ${who}${didYouMean(t.rawName, spellings)}`,
      );
    }
    const shown = `--${known.name}`;
    if (given.has(known.name)) {
      throw new UsageError(path, `${shown} is given more than once${known.def.valueHint === 'LIST' ? ' (a list is one comma-separated value: a,b)' : ''}`);
    }
    given.add(known.name);
    if (known.def.type === 'boolean') {
      if (t.value !== undefined) throw new UsageError(path, `${t.rawName} takes no value; unexpected '${t.value}'`);
      options.push(known.negated ? `--no-${known.name}` : shown);
      continue;
    }
    const hint = known.def.valueHint ?? known.name.toUpperCase();
    if (t.value === undefined) throw new UsageError(path, `${t.rawName} needs a value: ${shown}=<${hint}>`);
    if (!t.inlineValue && t.value.startsWith('-')) {
      throw new UsageError(path, `${t.rawName} needs a value, and '${t.value}' looks like an option: write ${shown}=${t.value} if that is the value`);
    }
    options.push(`${shown}=${t.value}`);
  }

  const declared = Object.entries(defs).filter(([, d]) => d.type === 'positional');
  for (const [name, def] of declared.slice(positionals.length)) {
    if (def.required !== false && def.default === undefined) throw new UsageError(path, `missing <${def.valueHint ?? name.toUpperCase()}> for ${who}`);
  }
  if (positionals.length > declared.length) {
    const takes = declared.length === 0 ? 'takes no arguments' : `takes ${declared.map(([n, d]) => `<${d.valueHint ?? n.toUpperCase()}>`).join(' ')}`;
    throw new UsageError(path, `unexpected argument '${positionals[declared.length]}' for ${who}: it ${takes}`);
  }
  return { argv: [...options, '--', ...positionals], given };
}
