// `farm --version`, `farm --help` (of any command) and bare `farm`, answered without TypeScript:
// tsx's loader alone costs ~0.4 s and ~35 MB before the first line of the farm runs. The pages
// are rendered ahead by src/cli/write-usage.ts into bin/usage.json, keyed by the files they are
// made from; when that key does not match the tree (a definition edited since), the answer comes
// from the TypeScript CLI instead, which renders the same pages from the definitions themselves.

import { createHash } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { wantColor } from '../src/ui/color.js';

const REPO = new URL('..', import.meta.url);
export const USAGE_FILE = new URL('usage.json', import.meta.url);
/** Everything the pages are made from, besides the version: definitions, renderer, styles. */
export const USAGE_SOURCES = ['src/cli/commands/', 'src/cli/usage.ts', 'src/ui/style.ts'];

const HELP = ['--help', '-h'];
const VERSION = ['--version', '-v'];

export function version() {
  return JSON.parse(readFileSync(new URL('package.json', REPO), 'utf8')).version;
}

/** sha256 over the version and the sources' contents. */
export function usageKey() {
  const hash = createHash('sha256').update(version());
  for (const source of USAGE_SOURCES) {
    const files = source.endsWith('/')
      ? readdirSync(new URL(source, REPO)).filter((f) => f.endsWith('.ts')).sort().map((f) => source + f)
      : [source];
    for (const file of files) hash.update(`\0${file}\0`).update(readFileSync(new URL(file, REPO)));
  }
  return hash.digest('hex');
}

/** The page for the command words at the start of argv, as the TypeScript CLI would pick it;
 *  undefined for a word that is not a command (the TypeScript CLI explains that). */
function pageFor(pages, words) {
  let path = 'farm';
  for (const word of words) {
    const page = pages[path];
    if (!page.commands || word.startsWith('-')) break;
    if (!page.commands.includes(word)) return undefined;
    path = `${path} ${word}`;
  }
  return { path, page: pages[path] };
}

/**
 * Answers argv when it asks only for the version or a usage page; returns the exit code, or
 * undefined when the TypeScript CLI must answer.
 */
export function answerFast(argv, io = { stdout: process.stdout, stderr: process.stderr, env: process.env }) {
  const end = argv.indexOf('--');
  const words = end === -1 ? argv : argv.slice(0, end);
  const help = words.some((a) => HELP.includes(a));
  if (!help && argv.length === 1 && VERSION.includes(argv[0])) {
    io.stdout.write(`${version()}\n`);
    return 0;
  }
  let usage;
  try {
    usage = JSON.parse(readFileSync(USAGE_FILE, 'utf8'));
    if (usage.key !== usageKey()) return undefined;
  } catch {
    return undefined;
  }
  const found = pageFor(usage.pages, words);
  if (!found) return undefined;
  // Bare `farm` (or `farm inventory`): a command is missing, so usage goes to stderr, exit 2.
  const missing = !help && found.page.commands !== undefined && found.path.split(' ').length - 1 === argv.length;
  if (!help && !missing) return undefined;
  const stream = help ? io.stdout : io.stderr;
  stream.write(wantColor(stream, io.env) ? found.page.color : found.page.plain);
  return help ? 0 : 2;
}
