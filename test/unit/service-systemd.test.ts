// The systemd units: what they run is a command farm has, and systemd accepts them.

import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { REPO } from '../support/cli.ts';
import { main } from '../../src/cli/main.ts';
import { PassThrough } from 'node:stream';

const run = promisify(execFile);
const DIR = join(REPO, 'scripts', 'systemd');
const UNITS = ['farm-serve.service', 'farm-build.service', 'farm-build.timer'];

function directive(text: string, key: string): string[] {
  return [...text.matchAll(new RegExp(`^${key}=(.*)$`, 'gm'))].map((m) => m[1]!);
}

async function usage(argv: string[]): Promise<string> {
  const stdout = new PassThrough();
  let text = '';
  stdout.on('data', (d: Buffer) => (text += d.toString()));
  expect(await main([...argv, '--help'], { stdout, stderr: new PassThrough() })).toBe(0);
  return text;
}

describe('systemd units', () => {
  it('run farm serve and farm build --if-changed with options farm has', async () => {
    const serve = await readFile(join(DIR, 'farm-serve.service'), 'utf8');
    const build = await readFile(join(DIR, 'farm-build.service'), 'utf8');
    expect(directive(serve, 'ExecStart')).toEqual(['/usr/bin/node /opt/farm/bin/farm.js serve --inventory /etc/farm/farm.yaml']);
    expect(directive(build, 'ExecStart')).toEqual(['/usr/bin/node /opt/farm/bin/farm.js build --if-changed --quiet --inventory /etc/farm/farm.yaml']);
    expect(await usage(['serve'])).toMatch(/--inventory/);
    const buildUsage = await usage(['build']);
    for (const opt of ['--if-changed', '--quiet', '--inventory', '--server']) expect(buildUsage).toContain(opt);
    for (const unit of [serve, build]) {
      expect(directive(unit, 'KillSignal')).toEqual(['SIGTERM']);
      expect(directive(unit, 'EnvironmentFile')).toEqual(['-/etc/farm/farm.env']);
      expect(directive(unit, 'NoNewPrivileges')).toEqual(['yes']);
      // V8 needs writable executable memory.
      expect(directive(unit, 'MemoryDenyWriteExecute')).toEqual([]);
    }
    expect(directive(serve, 'Restart')).toEqual(['on-failure']);
    const timer = await readFile(join(DIR, 'farm-build.timer'), 'utf8');
    expect(directive(timer, 'Persistent')).toEqual(['true']);
    expect(directive(timer, 'OnCalendar')).toEqual(['Sun *-*-* 03:00:00']);
  });

  it('pass systemd-analyze verify (systemd is in scripts/install-deps)', async () => {
    const r = await run('systemd-analyze', ['verify', '--man=no', ...UNITS.map((u) => join(DIR, u))]).then(
      (x) => ({ code: 0, stderr: x.stderr }),
      (e: { code: number; stderr: string }) => ({ code: e.code, stderr: e.stderr }),
    );
    // Lines about other units on this machine are not ours to judge.
    const ours = r.stderr.split('\n').filter((l) => /farm-(serve|build)/.test(l));
    expect(ours).toEqual([]);
    expect(r.code).toBe(0);
  });
});
