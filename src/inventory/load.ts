// Loads and validates an inventory file: the YAML's limits (size, nesting, aliases) and syntax, the
// schema, the rules the schema cannot express (names each target refuses, the build context,
// control characters, ...) and (optionally) the local files it names. Every problem is gathered,
// placed at its line and column, and reported together in one InventoryError; nothing else happens
// when any exist.

import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { LineCounter, parseDocument, type Document, type YAMLError } from 'yaml';
import { inventorySchema, type LoadedInventory } from './schema.ts';
import { checkFiles as checkLocalFiles, resolvePaths } from './files.ts';
import { dropExplainedMissing, issueToDrafts, type Draft } from './issues.ts';
import { locate } from './locate.ts';
import { InventoryError, formatPath, sortProblems, type InventoryProblem } from './problems.ts';
import { findSecrets } from './secrets.ts';
import { semanticChecks } from './semantic.ts';
import { targetKindChecks } from './target-checks.ts';
import { sourceChecks } from './source-rules.ts';
import { controlCharacterChecks } from './strings.ts';
import { MAX_ALIAS_EXPANSIONS, MAX_INVENTORY_BYTES, aliasLimit, depthLimit, sizeLimit, type Limit } from './yaml-limits.ts';

export { InventoryError, formatProblems, formatPath, type InventoryProblem } from './problems.ts';
export { resolveTargetName } from './target-name.ts';
export { resolveInventoryPath } from './files.ts';

export interface LoadOptions {
  /** Check that the local files the inventory names exist (default true). */
  checkFiles?: boolean;
}

const YAML_FIXES: Partial<Record<YAMLError['code'], string>> = {
  TAB_AS_INDENT: 'indent with spaces; YAML does not allow tabs for indentation',
  DUPLICATE_KEY: 'keep only one of the duplicate keys',
  MULTIPLE_DOCS: 'keep one document: remove the extra --- separator',
  BAD_ALIAS: 'define the anchor (&name) before using it (*name)',
  BAD_DQ_ESCAPE: 'fix the backslash escape, or use single quotes where backslashes are literal',
};
const YAML_FIX =
  'check the indentation and punctuation on this line and the one before; quote values that contain ": ", " #" or start with a special character';

function yamlProblem(file: string, err: YAMLError): InventoryProblem {
  // yaml's pretty messages end in " at line L, column C:" plus a source excerpt; we carry the position.
  const message = (err.message.split('\n')[0] ?? err.message).replace(/ at line \d+, column \d+:?\s*$/, '');
  const pos = err.linePos?.[0];
  return {
    file,
    ...(pos ? { line: pos.line, column: pos.col } : {}),
    field: '',
    message: `YAML syntax: ${message}`,
    fix: YAML_FIXES[err.code] ?? YAML_FIX,
  };
}

/** A YAML limit passed, as the one problem of the file, at its line and column. */
function limitError(file: string, text: string, limit: Limit): InventoryError {
  const before = text.slice(0, limit.offset);
  const line = before.split('\n').length;
  const column = limit.offset - (before.lastIndexOf('\n') + 1) + 1;
  return new InventoryError([{ file, line, column, field: '', message: limit.message, fix: limit.fix }]);
}

function place(file: string, doc: Document, lines: LineCounter, d: Draft): InventoryProblem {
  const pos = locate(doc, lines, d.path);
  return { file, ...(pos ? { line: pos.line, column: pos.column } : {}), field: formatPath(d.path), message: d.message, fix: d.fix };
}

/**
 * Validates inventory text. `file` is how problems name the file; relative paths resolve against
 * `dir`. Throws InventoryError with every problem found.
 */
export async function parseInventory(
  text: string,
  where: { file: string; dir: string; displayName?: string },
  opts: LoadOptions = {},
): Promise<LoadedInventory> {
  const shown = where.displayName ?? where.file;
  const limit = sizeLimit(Buffer.byteLength(text), text) ?? depthLimit(text);
  if (limit) throw limitError(shown, text, limit);
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, merge: true, uniqueKeys: true });
  if (doc.errors.length > 0) throw new InventoryError(doc.errors.map((e) => yamlProblem(shown, e)));

  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: MAX_ALIAS_EXPANSIONS });
  } catch (err) {
    if (err instanceof ReferenceError && /alias/i.test(err.message)) throw limitError(shown, text, aliasLimit(doc));
    throw new InventoryError([{ file: shown, field: '', message: `YAML: ${(err as Error).message}`, fix: YAML_FIX }]);
  }

  const parsed = inventorySchema.safeParse(data);
  const drafts: Draft[] = [
    ...(parsed.success ? [] : dropExplainedMissing(parsed.error.issues.flatMap((i) => issueToDrafts(i, data)))),
    ...findSecrets(data),
    ...semanticChecks(data),
    ...targetKindChecks(data),
    ...sourceChecks(data, where.dir),
    ...controlCharacterChecks(data),
    ...(opts.checkFiles === false ? [] : await checkLocalFiles(data, where.dir)),
  ];
  if (drafts.length > 0 || !parsed.success) {
    const problems = drafts.map((d) => place(shown, doc, lines, d));
    // Unreachable in practice (every issue maps to a problem), but never load an invalid inventory.
    if (problems.length === 0) problems.push({ file: shown, field: '', message: 'the inventory is invalid', fix: 'see inventory/farm.schema.json' });
    throw new InventoryError(sortProblems(problems));
  }
  return { file: where.file, dir: where.dir, inventory: resolvePaths(parsed.data, where.dir) };
}

/**
 * The file's text, refusing what is not a regular file (a FIFO or device would block or never end)
 * and reading no more than one byte past MAX_INVENTORY_BYTES.
 */
async function readBounded(file: string, shown = file): Promise<string> {
  // O_NONBLOCK: opening a FIFO must not wait for a writer before the check below refuses it.
  const handle = await open(file, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const st = await handle.stat();
    if (!st.isFile()) {
      throw new InventoryError([{ file: shown, field: '', message: 'the inventory is not a regular file', fix: 'point --inventory at a YAML file' }]);
    }
    const buf = Buffer.alloc(MAX_INVENTORY_BYTES + 1); // not st.size: some files report 0
    let n = 0;
    while (n < buf.length) {
      const { bytesRead } = await handle.read(buf, n, buf.length - n, n);
      if (bytesRead === 0) break;
      n += bytesRead;
    }
    const text = buf.subarray(0, n).toString('utf8');
    const over = sizeLimit(Math.max(st.size, n), text);
    if (over) throw limitError(shown, text, over);
    return text;
  } finally {
    await handle.close();
  }
}

/** Reads, validates and resolves the inventory at `path`; throws InventoryError listing every problem. */
export async function loadInventory(path: string, opts: LoadOptions = {}): Promise<LoadedInventory> {
  const file = resolve(path);
  let text: string;
  try {
    text = await readBounded(file, path);
  } catch (err) {
    if (err instanceof InventoryError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    throw new InventoryError([
      {
        file: path,
        field: '',
        message: code === 'ENOENT' ? 'the inventory file does not exist' : `cannot read the inventory file (${code ?? (err as Error).message})`,
        fix: code === 'ENOENT' ? 'check the path, or start a new one from inventory/farm.yaml' : 'make it readable by the user running farm',
      },
    ]);
  }
  return parseInventory(text, { file, dir: dirname(file), displayName: path }, opts);
}
