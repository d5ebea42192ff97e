// The CLI's conventions, through main() as bin/farm.js runs it: unknown commands, options and
// arguments refused with exit 2 and a suggestion; no colour unless the stream is a terminal;
// usage on stdout for --help and on stderr for a missing command; --json where there is output.

import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'citty';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { readArgv } from '../../src/cli/argv.ts';
import { buildArgs } from '../../src/cli/commands/build.ts';
import { root } from '../../src/cli/commands/index.ts';
import { uploadArgs } from '../../src/cli/commands/upload.ts';
import { Reporter } from '../../src/ui/reporter.ts';
import { cli, sink } from '../support/cli.ts';

const ESC = '\x1b';
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'farm-cli-'));
  // The context is src/: the default builds dir (next to the inventory) stays outside it.
  await mkdir(join(dir, 'src'));
  await writeFile(join(dir, 'src', 'Containerfile'), 'FROM scratch\n');
  await writeFile(join(dir, 'known_hosts'), '');
  await writeFile(
    join(dir, 'valid.yaml'),
    ['version: 1', 'source: { containerfile: src/Containerfile, context: src }', 'workers:', '  - { name: builder, host: 127.0.0.1, port: 1, arch: x86_64, known_hosts: known_hosts }', ''].join('\n'),
  );
  await writeFile(
    join(dir, 'invalid.yaml'),
    ['version: 1', 'source: { containerfile: src/Containerfile, context: src }', 'workers:', '  - name: builder', '    hostt: 127.0.0.1', '    arch: arm64', ''].join('\n'),
  );
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('unknown commands, options and arguments', () => {
  const refusals: Array<[string[], RegExp]> = [
    [['build', '--no-uplaod'], /unknown option '--no-uplaod' for farm build \(did you mean --no-upload\?\)/],
    [['build', '--if-chagned'], /did you mean --if-changed\?/],
    [['build', '-x'], /unknown option '-x' for farm build/],
    [['build', '--no-json'], /--json is off unless given/],
    [['upload', '20261121t101500z', '--onyl', 'aws'], /unknown option '--onyl' for farm upload \(did you mean --only\?\)/],
    [['images', '--limt', '3'], /did you mean --limit\?/],
    [['inventory', 'check', '--jsno'], /unknown option '--jsno' for farm inventory check \(did you mean --json\?\)/],
    [['inventory', 'schema', '--pretty'], /unknown option '--pretty' for farm inventory schema/],
    [['workers', 'check', '--arhc', 'x86_64'], /did you mean --arch\?/],
    [['workers', 'trust', 'builder', '--yse'], /unknown option '--yse' for farm workers trust \(did you mean --yes\?\)/],
    [['serve', '--lisen', ':0'], /did you mean --listen\?/],
    [['biuld'], /unknown command 'biuld' for farm \(did you mean build\?\)/],
    [['inventory', 'chek'], /unknown command 'chek' for farm inventory \(did you mean check\?\)/],
    [['workers', 'trsut', 'x'], /unknown command 'trsut' for farm workers \(did you mean trust\?\)/],
    [['inventory', '--json'], /unknown option '--json' for farm inventory: give a command first \(check, schema\)/],
    [['--verison'], /did you mean --version\?/],
    [['--version', 'build'], /--version takes nothing else/],
    [['images', 'extra'], /unexpected argument 'extra' for farm images: it takes no arguments/],
    [['inventory', 'check', 'farm.yaml'], /unexpected argument 'farm.yaml' for farm inventory check/],
    [['workers', 'trust', 'a', 'b'], /unexpected argument 'b' for farm workers trust: it takes <NAME>/],
    [['upload'], /missing <BUILD_ID> for farm upload/],
    [['build', '--arch'], /--arch needs a value: --arch=<LIST>/],
    [['build', '--arch', '--json'], /'--json' looks like an option: write --arch=--json/],
    [['build', '--json=yes'], /--json takes no value/],
    [['build', '--only', 'a', '--only', 'b'], /--only is given more than once \(a list is one comma-separated value/],
    [['build', '--upload', '--no-upload'], /--upload is given more than once/],
  ];
  for (const [argv, message] of refusals) {
    it(`refuses farm ${argv.join(' ')} with exit 2 before doing anything`, async () => {
      // The inventory does not exist here: a command that ran would fail differently.
      const r = await cli(argv, { cwd: dir });
      expect(r.stderr).toMatch(message);
      expect(r.stderr).toMatch(/hint: /);
      expect(r.code).toBe(2);
      expect(r.stdout).toBe('');
    });
  }

  it('hands citty the options it checked, in one spelling: a real negation keeps working', () => {
    const request = readArgv(root, ['build', '--no-upload', '-i', 'x.yaml', '-q', '--arch=s390x', '--only', 'aws,libvirt']);
    expect(request.kind).toBe('run');
    if (request.kind !== 'run') return;
    expect(request.argv).toEqual(['--no-upload', '--inventory=x.yaml', '--quiet', '--arch=s390x', '--only=aws,libvirt', '--']);
    expect([...request.data.given]).toEqual(['upload', 'inventory', 'quiet', 'arch', 'only']);
    const args = parseArgs(request.argv, buildArgs);
    expect(args).toMatchObject({ upload: false, inventory: 'x.yaml', quiet: true, arch: 's390x', only: 'aws,libvirt' });
    // Defaults stay defaults when nothing is given.
    const none = readArgv(root, ['build']);
    expect(none.kind === 'run' && parseArgs(none.argv, buildArgs)).toMatchObject({ upload: true, arch: 'all', inventory: 'inventory/farm.yaml' });
  });

  it('passes positionals after -- and values that start with a dash when written inline', () => {
    const r = readArgv(root, ['upload', '--only=-odd', '--', '-20261121t101500z']);
    expect(r.kind === 'run' && r.argv).toEqual(['--only=-odd', '--', '-20261121t101500z']);
    expect(r.kind === 'run' && parseArgs(r.argv, uploadArgs)).toMatchObject({ only: '-odd', build: '-20261121t101500z' });
  });
});

describe('usage', () => {
  it('farm --help: usage on stdout, exit 0', async () => {
    const r = await cli(['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^USAGE farm <build\|upload\|images\|inventory\|workers\|serve\|rollback\|release\|prune>$/m);
    expect(r.stderr).toBe('');
  });

  it('bare farm and a group without its command: usage on stderr, exit 2', async () => {
    for (const [argv, usage] of [
      [[], /USAGE farm <build/],
      [['inventory'], /USAGE farm inventory <check\|schema>/],
      [['workers'], /USAGE farm workers <check\|trust\|sweep>/],
    ] as const) {
      const r = await cli([...argv]);
      expect(r.code).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(usage);
    }
  });

  it('help of nested commands lists their options and real negations', async () => {
    const r = await cli(['workers', 'trust', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/USAGE farm workers trust <NAME> \[OPTIONS\]/);
    for (const opt of ['-i, --inventory=<FILE>', '-y, --yes', '--json', '-h, --help']) expect(r.stdout).toContain(opt);
    expect((await cli(['build', '-h'])).stdout).toMatch(/--no-upload +Build and fetch only/);
  });

  it('farm --version prints the version', async () => {
    const r = await cli(['--version']);
    expect(r).toMatchObject({ code: 0, stdout: expect.stringMatching(/^\d+\.\d+\.\d+\n$/) });
  });
});

describe('colour', () => {
  it('none when the stream is not a terminal, whatever the command', async () => {
    for (const argv of [['--help'], ['build', '--help'], [], ['build', '--no-uplaod']]) {
      const r = await cli(argv, { cwd: dir });
      expect(r.stdout + r.stderr).not.toContain(ESC);
    }
  });

  it('on a terminal, unless NO_COLOR is set or TERM is dumb; FORCE_COLOR forces it', async () => {
    expect((await cli(['--help'], { stdoutTTY: true })).stdout).toContain(`${ESC}[`);
    expect((await cli(['--help'], { stdoutTTY: true, env: { NO_COLOR: '1' } })).stdout).not.toContain(ESC);
    expect((await cli(['--help'], { stdoutTTY: true, env: { TERM: 'dumb' } })).stdout).not.toContain(ESC);
    expect((await cli(['--help'], { env: { FORCE_COLOR: '1' } })).stdout).toContain(`${ESC}[`);
    expect((await cli(['--help'], { stdoutTTY: true, env: { FORCE_COLOR: '0' } })).stdout).not.toContain(ESC);
    // Each stream decides for itself: bare farm's usage goes to stderr.
    expect((await cli([], { stdoutTTY: true })).stderr).not.toContain(ESC);
    expect((await cli([], { stderrTTY: true })).stderr).toContain(`${ESC}[`);
  });

  it('coloured help is the plain help plus escapes only', async () => {
    const plain = (await cli(['build', '--help'])).stdout;
    const color = (await cli(['build', '--help'], { stdoutTTY: true })).stdout;
    expect(color).not.toBe(plain);
    expect(color.replace(/\x1b\[[0-9;]*m/g, '')).toBe(plain);
  });
});

// These load the commands' own modules (the SDKs among them) on first use.
const SLOW = { timeout: 60_000 };

describe('--json', SLOW, () => {
  it('inventory check --json: the plan of a valid inventory', async () => {
    const r = await cli(['inventory', 'check', '--json', '-i', 'valid.yaml'], { cwd: dir });
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j).toMatchObject({ file: join(dir, 'valid.yaml'), valid: true, problems: [] });
    expect(j.arches).toEqual([expect.objectContaining({ arch: 'x86_64', workers: ['builder'], types: expect.any(Array), targets: [] })]);
  });

  it('inventory check --json: every problem with file, line, column, field, message and fix; exit 2 as without it', async () => {
    const r = await cli(['inventory', 'check', '--json', '-i', 'invalid.yaml'], { cwd: dir });
    const text = await cli(['inventory', 'check', '-i', 'invalid.yaml'], { cwd: dir });
    expect(r.code).toBe(2);
    expect(text.code).toBe(2);
    const j = JSON.parse(r.stdout);
    expect(j.valid).toBe(false);
    expect(j.problems.length).toBeGreaterThanOrEqual(2);
    for (const p of j.problems) expect(Object.keys(p)).toEqual(expect.arrayContaining(['file', 'line', 'column', 'field', 'message', 'fix']));
    expect(j.problems).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ line: 5, field: 'workers[0].hostt' }),
        expect.objectContaining({ line: 6, field: 'workers[0].arch', message: expect.stringContaining('arm64') }),
      ]),
    );
  });

  it('workers check --json: one object per worker; an unreachable one says so, exit 1', async () => {
    const r = await cli(['workers', 'check', '--json', '-i', 'valid.yaml'], { cwd: dir });
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout)).toEqual([
      expect.objectContaining({ name: 'builder', arch: 'x86_64', address: '127.0.0.1:1', reachable: false, healthy: false, problems: [expect.any(String)] }),
    ]);
  });

  it('every command with output takes --json', async () => {
    for (const path of [['build'], ['upload'], ['images'], ['inventory', 'check'], ['inventory', 'schema'], ['workers', 'check'], ['workers', 'trust']]) {
      expect((await cli([...path, '--help'])).stdout).toMatch(/^ {2}--json/m);
    }
  });
});

describe('farm build --server', SLOW, () => {
  for (const [given, shown] of [
    [['-i', 'x.yaml'], '--inventory'],
    [['--only', 'aws'], '--only'],
    [['--skip', 'aws'], '--skip'],
    [['--no-upload'], '--no-upload'],
    [['--quiet'], '--quiet'],
  ] as const) {
    it(`refuses ${given.join(' ')}, which it cannot pass on, naming it`, async () => {
      const r = await cli(['build', '--server', 'http://127.0.0.1:9', ...given], { env: { FARM_TOKEN: 't' } });
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(`farm build --server cannot pass on ${shown}`);
    });
  }

  it('takes what it forwards (--arch, --if-changed, --force, --json)', async () => {
    // No token: the request is refused after the options passed.
    const r = await cli(['build', '--server', 'http://127.0.0.1:9', '--arch', 'x86_64', '--if-changed', '--force', '--json']);
    expect(r.stderr).toContain('FARM_TOKEN is not set');
    expect(r.code).toBe(2);
  });
});

describe('the build log on the terminal (Reporter)', () => {
  /** One line through a Reporter left to decide colour itself, in the given environment. */
  const line = (tty: boolean, env: Record<string, string> = {}) => {
    for (const [k, v] of Object.entries({ NO_COLOR: undefined, FORCE_COLOR: undefined, TERM: 'xterm', ...env })) vi.stubEnv(k, v);
    try {
      const stream = sink(tty);
      new Reporter({ stream }).scoped('x86_64').info('building');
      return stream.text();
    } finally {
      vi.unstubAllEnvs();
    }
  };

  it('follows the same rule as help: TTY, NO_COLOR, TERM=dumb, FORCE_COLOR', () => {
    expect(line(true)).toContain(ESC);
    expect(line(false)).not.toContain(ESC);
    expect(line(true, { NO_COLOR: '1' })).not.toContain(ESC);
    expect(line(true, { TERM: 'dumb' })).not.toContain(ESC);
    expect(line(false, { FORCE_COLOR: '1' })).toContain(ESC);
  });
});
