// bin/fast-path.js answers --version and usage pages without TypeScript, from bin/usage.json. Its
// answers must be the TypeScript CLI's own, and it must step aside when the definitions changed.

import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { USAGE_FILE, USAGE_SOURCES, answerFast } from '../../bin/fast-path.js';
import { usagePages } from '../../src/cli/usage-pages.ts';
import { REPO, cli, sink } from '../support/cli.ts';

const scratch = mkdtempSync(join(tmpdir(), 'farm-fast-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function fast(argv: string[], opts: { env?: Record<string, string>; stdoutTTY?: boolean; stderrTTY?: boolean } = {}, answer = answerFast) {
  const stdout = sink(opts.stdoutTTY);
  const stderr = sink(opts.stderrTTY);
  const code = answer(argv, { stdout, stderr, env: opts.env ?? {} });
  return { code, stdout: stdout.text(), stderr: stderr.text() };
}

describe('bin/usage.json', () => {
  it('is what the definitions render now (regenerate: node bin/tsnode.js src/cli/write-usage.ts)', () => {
    expect(JSON.parse(readFileSync(USAGE_FILE, 'utf8'))).toEqual(usagePages());
  });
});

describe('answerFast', () => {
  const pages = Object.keys(usagePages().pages);

  it('has a page for every command', () => {
    expect(pages).toEqual(expect.arrayContaining(['farm', 'farm build', 'farm inventory check', 'farm workers trust', 'farm serve']));
  });

  for (const color of [false, true]) {
    it(`prints every help page as the TypeScript CLI does (${color ? 'terminal' : 'pipe'})`, async () => {
      for (const page of pages) {
        for (const flag of ['--help', '-h']) {
          const argv = [...page.split(' ').slice(1), flag];
          const mine = fast(argv, { stdoutTTY: color });
          expect(mine).toEqual({ ...(await cli(argv, { stdoutTTY: color })), code: 0 });
          expect(mine.stdout.includes('\x1b')).toBe(color);
        }
      }
    });
  }

  it('prints bare farm and a bare group to stderr with exit 2, as the TypeScript CLI does', async () => {
    for (const argv of [[], ['inventory'], ['workers']]) {
      expect(fast(argv)).toEqual({ ...(await cli(argv)), code: 2 });
      expect(fast(argv, { stderrTTY: true })).toEqual({ ...(await cli(argv, { stderrTTY: true })), code: 2 });
    }
  });

  it('prints the version', async () => {
    expect(fast(['--version'])).toEqual(await cli(['--version']));
    expect(fast(['-v']).stdout).toBe((await cli(['--version'])).stdout);
  });

  it('leaves everything else to the TypeScript CLI', () => {
    for (const argv of [['build'], ['biuld', '--help'], ['inventory', 'chek', '-h'], ['--version', 'x'], ['inventory', '--json'], ['--', '--help'], ['--verison']]) {
      expect(fast(argv)).toEqual({ code: undefined, stdout: '', stderr: '' });
    }
  });

  it('steps aside when a definition changed since bin/usage.json was written', async () => {
    // A copy of what the fast path reads, in a tree of its own.
    const tree = join(scratch, 'tree');
    for (const f of ['package.json', 'bin/fast-path.js', 'bin/usage.json', 'src/ui/color.js', ...USAGE_SOURCES]) {
      mkdirSync(dirname(join(tree, f)), { recursive: true });
      cpSync(join(REPO, f), join(tree, f), { recursive: true });
    }
    const copy = (await import(pathToFileURL(join(tree, 'bin/fast-path.js')).href)) as { answerFast: typeof answerFast };
    expect(fast(['build', '--help'], {}, copy.answerFast).code).toBe(0);
    const build = join(tree, 'src/cli/commands/build.ts');
    writeFileSync(build, readFileSync(build, 'utf8').replace('Upload to the targets', 'Upload to every target'));
    expect(fast(['build', '--help'], {}, copy.answerFast).code).toBeUndefined();
    expect(fast([], {}, copy.answerFast).code).toBeUndefined();
    // The version comes from package.json itself.
    expect(fast(['--version'], {}, copy.answerFast).code).toBe(0);
  });
});
