// What is wrong with an inventory, where, and how to fix it. All problems are gathered and reported
// together so one `farm inventory check` run shows everything to fix.

import { FarmError } from '../core/errors.ts';
import { printable } from './strings.ts';

export interface InventoryProblem {
  /** The inventory file as the user named it. */
  file: string;
  /** 1-based position of the offending node, when known. */
  line?: number;
  column?: number;
  /** Path of the offending field, e.g. `workers[1].arch`; empty for file-level problems (YAML syntax). */
  field: string;
  message: string;
  fix: string;
}

export type PathSegment = string | number;

const IDENT = /^[A-Za-z_][A-Za-z0-9_-]*$/;

/** `['workers', 1, 'arch']` → `workers[1].arch`; odd keys (tags, properties) are quoted. */
export function formatPath(path: readonly PathSegment[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (IDENT.test(seg)) out += out === '' ? seg : `.${seg}`;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out;
}

export function formatProblem(p: InventoryProblem): string {
  const where = p.line === undefined ? p.file : `${p.file}:${p.line}:${p.column ?? 1}`;
  const field = p.field === '' ? '' : `${p.field}: `;
  return `${where}: ${field}${p.message} — fix: ${p.fix}`;
}

/** One problem per line, e.g. `inventory/farm.yaml:12:5: workers[1].arch: unknown arch 'arm64' — fix: ...`. */
export function formatProblems(problems: readonly InventoryProblem[]): string {
  return problems.map(formatProblem).join('\n');
}

/** Orders problems as they appear in the file (file-level ones last) and drops exact repeats. */
export function sortProblems(problems: readonly InventoryProblem[]): InventoryProblem[] {
  const seen = new Set<string>();
  const unique = problems.filter((p) => {
    const key = `${p.field}\0${p.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
  const pos = (p: InventoryProblem) => (p.line ?? Number.MAX_SAFE_INTEGER) * 1e6 + (p.column ?? 0);
  return unique.map((p, i) => ({ p, i })).sort((a, b) => pos(a.p) - pos(b.p) || a.i - b.i).map(({ p }) => p);
}

export class InventoryError extends FarmError {
  readonly problems: InventoryProblem[];

  constructor(found: InventoryProblem[]) {
    // Values from the file reach messages ("unknown key ..."): never print its control characters.
    const problems = found.map((p) => ({ ...p, file: printable(p.file), field: printable(p.field), message: printable(p.message), fix: printable(p.fix) }));
    const n = problems.length;
    super('INVENTORY', formatProblems(problems), {
      hint: `${n} problem${n === 1 ? '' : 's'} in the inventory; nothing was done`,
    });
    this.name = 'InventoryError';
    this.problems = problems;
  }
}
