// The layers, enforced: every import (value, type, re-export and dynamic) of every .ts file in
// src/, workers/ and uploaders/ is read with TypeScript's own pre-processor and checked against
// the rules of DESIGN-10: the core at the bottom imports only itself; workers/ and uploaders/
// import only the core and their own folder (never each other); the coordinator (the rest of src/)
// names target kinds only in the registry, src/targets.ts.

import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { KIND_NAMES } from '../../src/targets.ts';
import { REPO } from '../support/cli.ts';

const ROOTS = ['src', 'workers', 'uploaders'];

function tsFiles(dir: string): string[] {
  return readdirSync(join(REPO, dir), { withFileTypes: true }).flatMap((e) => {
    const path = `${dir}/${e.name}`;
    if (e.isDirectory()) return tsFiles(path);
    return e.name.endsWith('.ts') ? [path] : [];
  });
}

/** Project files a file imports, relative to the repository (packages and node: left out). */
export function projectImports(file: string, text: string): string[] {
  const { importedFiles } = ts.preProcessFile(text, true, true);
  return importedFiles
    .map((f) => f.fileName)
    .filter((spec) => spec.startsWith('.'))
    .map((spec) => relative(REPO, resolve(REPO, dirname(file), spec)));
}

/** Why `file` may not import `target`, or undefined when the layers allow it. */
export function layerViolation(file: string, target: string): string | undefined {
  const top = (p: string) => p.split('/')[0]!;
  const inCore = (p: string) => p.startsWith('src/core/');
  if (inCore(file)) return inCore(target) ? undefined : 'the core (src/core) imports nothing of the project outside itself';
  if (top(file) === 'workers' || top(file) === 'uploaders') {
    if (inCore(target) || top(target) === top(file)) return undefined;
    if (top(target) === 'src') return `${top(file)}/ imports only src/core from src/ (the coordinator wires it, never the reverse)`;
    return `${top(file)}/ never imports ${top(target)}/: what both need lives in src/core`;
  }
  // The coordinator: kinds are reached through the registry only.
  if (file !== 'src/targets.ts' && /^uploaders\/[^/]+\//.test(target) && !target.startsWith('uploaders/toolkit/')) {
    return 'only src/targets.ts imports a target kind\'s folder; the rest of src/ goes through KINDS';
  }
  return undefined;
}

function violations(files: readonly string[], read: (f: string) => string = (f) => readFileSync(join(REPO, f), 'utf8')): string[] {
  return files.flatMap((file) =>
    projectImports(file, read(file)).flatMap((target) => {
      const why = layerViolation(file, target);
      return why ? [`${file} imports ${target}: ${why}`] : [];
    }),
  );
}

/**
 * Imports that break the rules today and are being moved by another part of issue 10: the libvirt
 * wrapper's pinned-key lookup and quoting go to src/core/hostkeys.ts and src/core/quote.ts (part 5,
 * SSH in small pieces). Each must still exist, so the list empties when the move lands.
 */
const PENDING = [
  'uploaders/libvirt/ssh-wrapper.ts imports workers/ssh/hostkeys.ts',
  'uploaders/libvirt/ssh-wrapper.ts imports workers/ssh/quote.ts',
];

describe('the layers', () => {
  const files = ROOTS.flatMap(tsFiles);

  it('every import of src/, workers/ and uploaders/ keeps to them', () => {
    expect(files.length).toBeGreaterThan(100);
    const found = violations(files);
    const pending = (v: string) => PENDING.some((p) => v.startsWith(`${p}:`));
    expect(found.filter((v) => !pending(v))).toEqual([]);
    // An exemption whose import is gone goes from PENDING too.
    expect(PENDING.filter((p) => !found.some((v) => v.startsWith(`${p}:`)))).toEqual([]);
  });

  it('no file of src/ but the registry names a target kind in its code', () => {
    const named = new RegExp(`['"\`](${KIND_NAMES.join('|')})['"\`]`);
    const found = files
      .filter((f) => f.startsWith('src/') && f !== 'src/targets.ts')
      .filter((f) => {
        // Code only: comments may mention a kind as an example.
        const code = readFileSync(join(REPO, f), 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
        return named.test(code);
      });
    expect(found).toEqual([]);
  });

  it('the folders of the layers exist: core, workers, uploaders, the registry', () => {
    for (const f of ['src/core/errors.ts', 'src/core/image-types.ts', 'src/core/artifact.ts', 'workers/endpoint.ts', 'uploaders/kind.ts', 'src/targets.ts']) {
      expect(files).toContain(f);
    }
  });

  // The rule itself, on imports that break it (a test of the checker: an import graph the rules
  // accept could otherwise hide a checker that accepts everything).
  it.each([
    ['src/core/errors.ts', "import { x } from '../inventory/schema.ts';", 'the core'],
    ['src/core/poll.ts', "export { y } from '../../workers/transport.ts';", 'the core'],
    ['workers/ssh/session.ts', "import type { Worker } from '../../src/inventory/schema.ts';", 'imports only src/core'],
    ['workers/bib/bib-builder.ts', "const m = await import('../../uploaders/uploader.ts');", 'never imports uploaders/'],
    ['uploaders/aws/index.ts', "import type {\n  Artifact,\n} from '../../workers/artifact.ts';", 'never imports workers/'],
    ['uploaders/ibmcloud/index.ts', "import { resolveTargetName } from '../../src/inventory/target-name.ts';", 'imports only src/core'],
    ['src/inventory/semantic.ts', "import { tagProblem } from '../../uploaders/aws/tags.ts';", 'only src/targets.ts'],
  ])('refuses %s with %s', (file, line, why) => {
    const found = violations([file], () => `// a comment: import { no } from '../../src/cli/main.ts' is not an import\n${line}\n`);
    expect(found).toHaveLength(1);
    expect(found[0]).toContain(why);
  });

  it('accepts the core, its own folder and the seam files', () => {
    const text = [
      "import { FarmError } from '../../src/core/errors.ts';",
      "import type { Uploader } from '../uploader.ts';",
      "import { lazyUploader } from '../kind.ts';",
      "const m = await import('./index.ts');",
      "import { z } from 'zod';",
      "import { join } from 'node:path';",
    ].join('\n');
    expect(violations(['uploaders/aws/kind.ts'], () => text)).toEqual([]);
  });
});
