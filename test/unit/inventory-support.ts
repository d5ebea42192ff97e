// Shared by the inventory rule tests: inventories written inline, loaded without file checks
// unless asked, and the problems they produce.

import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { InventoryError, formatProblems, loadInventory, type InventoryProblem, type LoadOptions } from '../../src/inventory/load.ts';

export const KEY = 'SHA256:abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ';

/** Strips the leading newline and the common indentation, so line numbers read off the test. */
export function yml(text: string): string {
  const lines = text.replace(/^\n/, '').replace(/\n\s*$/, '\n').split('\n');
  const indent = Math.min(...lines.filter((l) => l.trim()).map((l) => /^ */.exec(l)![0].length));
  return lines.map((l) => l.slice(indent)).join('\n');
}

/** A valid inventory to add one thing to (workers[0] ends the text, so worker keys can follow). */
export const VALID = yml(`
  version: 1
  source: { containerfile: Containerfile }
  settings: { builds_dir: ../builds }
  workers:
    - name: builder-x86_64
      host: 10.231.0.11
      arch: x86_64
      host_key: "${KEY}"
`);

/** VALID with another `source:` (a flow mapping such as `{ image: "quay.io/a/b:1" }`). */
export function withSource(source: string): string {
  return VALID.replace('source: { containerfile: Containerfile }', `source: ${source}`);
}

let root: string | undefined;
let seq = 0;

/** Writes the inventory (and extra files) into a fresh directory; returns the inventory's path. */
export async function writeInventory(text: string, files: Record<string, string> = {}): Promise<string> {
  root ??= await mkdtemp(join(tmpdir(), 'farm-inventory-rules-'));
  const dir = join(root, `case-${++seq}`);
  await mkdir(dir, { recursive: true });
  for (const [name, content] of Object.entries(files)) {
    await mkdir(dirname(join(dir, name)), { recursive: true });
    await writeFile(join(dir, name), content);
  }
  const file = join(dir, 'farm.yaml');
  await writeFile(file, text);
  return file;
}

/** Removes every case directory written so far (afterAll). */
export async function removeCases(): Promise<void> {
  if (root) await rm(root, { recursive: true, force: true });
  root = undefined;
}

/** The problems of an inventory that must not load. */
export async function problemsOf(text: string, opts: LoadOptions = { checkFiles: false }, files: Record<string, string> = {}): Promise<InventoryProblem[]> {
  const file = await writeInventory(text, files);
  const err = await loadInventory(file, opts).then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof InventoryError)) throw new Error(`expected an InventoryError, got ${String(err)}`);
  return err.problems;
}

/** Loads an inventory that must be valid. */
export async function loads(text: string, opts: LoadOptions = { checkFiles: false }, files: Record<string, string> = {}) {
  return loadInventory(await writeInventory(text, files), opts);
}

/** The one problem at `field`. */
export function only(problems: InventoryProblem[], field: string): InventoryProblem {
  const matching = problems.filter((p) => p.field === field);
  if (matching.length !== 1) throw new Error(`expected one problem at ${field}, got:\n${formatProblems(problems)}`);
  return matching[0]!;
}
