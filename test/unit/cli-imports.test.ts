// The CLI's entry stays small: the command tree is definitions only, and what main.ts imports
// before a command runs is a few modules of its own (the commands' modules load when they run).

import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { USAGE_SOURCES } from '../../bin/fast-path.js';
import { REPO } from '../support/cli.ts';

/** Static, value imports of a module (`import type` erases; `import()` is dynamic). */
function staticImports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(/^(?:import|export)\s+(?!type\s)(?:[^'";]*?\sfrom\s+)?['"]([^'"]+)['"]/gm)) out.push(m[1]!);
  return out;
}

function dynamicImports(file: string): string[] {
  return [...readFileSync(file, 'utf8').matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g)].map((m) => m[1]!);
}

/** Every file and package main.ts pulls in before any command runs. */
function graph(entry: string): { files: string[]; packages: string[] } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const visit = (file: string) => {
    if (files.has(file)) return;
    files.add(file);
    for (const spec of staticImports(file)) {
      if (spec.startsWith('node:')) continue;
      if (spec.startsWith('.')) visit(resolve(dirname(file), spec));
      else packages.add(spec);
    }
  };
  visit(entry);
  return { files: [...files].map((f) => relative(REPO, f)).sort(), packages: [...packages].sort() };
}

describe('the CLI import graph', () => {
  it('main.ts loads the tree, the argument checks and the renderer, and no command', () => {
    const { files, packages } = graph(join(REPO, 'src/cli/main.ts'));
    expect(packages).toEqual(['citty']);
    const commands = readdirSync(join(REPO, 'src/cli/commands')).map((f) => `src/cli/commands/${f}`);
    expect(files).toEqual(
      [
        'bin/fast-path.js',
        'src/cli/argv.ts',
        'src/cli/io.ts',
        'src/cli/main.ts',
        'src/cli/usage.ts',
        'src/cli/version.ts',
        'src/core/arch.ts',
        'src/core/errors.ts',
        'src/core/redact.ts',
        'src/inventory/suggest.ts',
        'src/ui/color.js',
        'src/ui/style.ts',
        ...commands,
      ].sort(),
    );
  });

  it('the command definitions import only each other and citty; what they run loads from actions/', () => {
    for (const f of readdirSync(join(REPO, 'src/cli/commands'))) {
      const file = join(REPO, 'src/cli/commands', f);
      for (const spec of staticImports(file)) expect(spec === 'citty' || /^\.\/[a-z-]+\.ts$/.test(spec), `${f} imports ${spec}`).toBe(true);
      for (const spec of dynamicImports(file)) expect(spec, `${f} loads ${spec}`).toMatch(/^\.\.\/actions\/[a-z-]+\.ts$/);
    }
  });

  it('the usage pages depend only on files bin/usage.json is keyed by', () => {
    const { files } = graph(join(REPO, 'src/cli/commands/index.ts'));
    const usage = graph(join(REPO, 'src/cli/usage.ts')).files;
    for (const f of [...files, ...usage]) expect(USAGE_SOURCES.some((s) => (s.endsWith('/') ? f.startsWith(s) : f === s)), f).toBe(true);
  });
});
