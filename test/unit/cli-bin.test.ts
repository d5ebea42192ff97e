// The real bin/farm.js as a child process with pipes, as scripts and CI run it: no ANSI escapes
// when nothing is a terminal, and what --version, --help and light commands load (the SDKs only
// load for the commands that use them). Module lists, not wall time, so the test holds on a busy
// machine; `npm run bench -- startup` measures the time.

import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FARM_BIN, REPO } from '../support/cli.ts';

const scratch = mkdtempSync(join(tmpdir(), 'farm-bin-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));
// One worker nobody answers for (port 1 on loopback): commands run, nothing is contacted.
const INVENTORY = join(scratch, 'farm.yaml');
mkdirSync(join(scratch, 'src'));
writeFileSync(join(scratch, 'src', 'Containerfile'), 'FROM scratch\n');
writeFileSync(join(scratch, 'known_hosts'), '');
writeFileSync(
  INVENTORY,
  'version: 1\nsource: { containerfile: src/Containerfile, context: src }\nworkers:\n  - { name: w, host: 127.0.0.1, port: 1, arch: x86_64, known_hosts: known_hosts }\n',
);

/** The environment of a user's shell: a colour terminal type, no colour switches set. */
function userEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, TERM: 'xterm-256color', ...extra };
  for (const k of ['NO_COLOR', 'FORCE_COLOR', 'NODE_DISABLE_COLORS']) if (!(k in extra)) delete env[k];
  return env;
}

let seq = 0;
function run(args: string[], opts: { logModules?: boolean; env?: NodeJS.ProcessEnv } = {}) {
  const log = join(scratch, `modules-${++seq}.txt`);
  const preload = opts.logModules ? ['--import', join(REPO, 'test/support/module-log.mjs')] : [];
  const r = spawnSync(process.execPath, [...preload, FARM_BIN, ...args], {
    cwd: REPO,
    env: userEnv({ FARM_MODULE_LOG: log, ...opts.env }),
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: 120_000,
  });
  const modules = opts.logModules ? readFileSync(log, 'utf8').split('\n').filter(Boolean) : [];
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, modules: [...new Set(modules)] };
}

const SDKS = /node_modules\/(@aws-sdk|@smithy|ssh2|dockerode|docker-modem|ibm-cloud-sdk-core|@ibm-cloud|prom-client|tar-fs|tar-stream)\//;
const ESC = 0x1b;

// A command that runs goes through tsx, seconds on a busy two-core machine.
const SLOW = { timeout: 60_000 };

describe('bin/farm.js through pipes', SLOW, () => {
  for (const [args, code, where] of [
    [['--help'], 0, 'stdout'],
    [['build', '--help'], 0, 'stdout'],
    [['workers', 'trust', '-h'], 0, 'stdout'],
    [[], 2, 'stderr'],
    [['build', '--no-uplaod'], 2, 'stderr'],
    [['inventory', 'schema'], 0, 'stdout'],
  ] as const) {
    it(`farm ${args.join(' ') || '(bare)'}: no escape bytes on stdout or stderr`, () => {
      const r = run([...args]);
      expect(r.code).toBe(code);
      expect(r[where].length).toBeGreaterThan(0);
      expect(r.stdout.includes(ESC)).toBe(false);
      expect(r.stderr.includes(ESC)).toBe(false);
    });
  }

  it('FORCE_COLOR still colours help through a pipe', () => {
    expect(run(['--help'], { env: { FORCE_COLOR: '1' } }).stdout.includes(ESC)).toBe(true);
  });
});

describe('what a command loads', SLOW, () => {
  for (const args of [['--version'], ['--help'], ['inventory', 'check', '--help'], []]) {
    it(`farm ${args.join(' ') || '(bare)'} loads no TypeScript loader, no package and a handful of files`, () => {
      const r = run(args, { logModules: true });
      expect(r.code).toBe(args.length ? 0 : 2);
      const files = r.modules.filter((u) => u.startsWith('file:'));
      expect(files.filter((u) => u.includes('/node_modules/'))).toEqual([]);
      expect(files.map((u) => u.slice(`file://${REPO}`.length)).sort()).toEqual(['bin/farm.js', 'bin/fast-path.js', 'src/ui/color.js']);
    });
  }

  for (const args of [['inventory', 'schema'], ['build', '--no-uplaod'], ['images', '-i', INVENTORY, '--json'], ['inventory', 'check', '-i', INVENTORY, '--json']]) {
    it(`farm ${args.join(' ')} runs through TypeScript without loading any SDK`, () => {
      const r = run(args, { logModules: true });
      expect(r.modules.some((u) => u.includes('/src/cli/main.ts'))).toBe(true);
      expect(r.modules.filter((u) => SDKS.test(u))).toEqual([]);
    });
  }

  it('farm workers check loads ssh2 and dockerode, but no cloud SDK (the modules are per command)', () => {
    const r = run(['workers', 'check', '-i', INVENTORY, '--json'], { logModules: true });
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout.toString())).toEqual([expect.objectContaining({ name: 'w', reachable: false })]);
    expect(r.modules.some((u) => /node_modules\/ssh2\//.test(u))).toBe(true);
    expect(r.modules.some((u) => /node_modules\/dockerode\//.test(u))).toBe(true);
    expect(r.modules.filter((u) => /node_modules\/(@aws-sdk|@ibm-cloud|ibm-cloud-sdk-core|prom-client)\//.test(u))).toEqual([]);
  });
});
