// `farm workers trust` against real OpenSSH servers on loopback (no lab): a host that has a key
// recorded gets no other one, of any type, in any spelling of its known_hosts line; a fresh
// known_hosts is made 0600 in a 0700 directory; "already trusted" when nothing is added.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli } from '../support/cli.ts';
import { generateKey, startSshd, type TestSshd } from '../support/sshd.ts';

let scratch: string;
/** Presents ed25519 and ecdsa: the real host. */
let host: TestSshd;
/** Presents only an ecdsa key: someone in the middle, where host's ed25519 key is recorded. */
let mitm: TestSshd;

beforeAll(async () => {
  scratch = mkdtempSync(join(tmpdir(), 'farm-trust-'));
  host = await startSshd({ hostKeyTypes: ['ed25519', 'ecdsa'] });
  mitm = await startSshd({ hostKeyTypes: ['ecdsa'] });
});
afterAll(async () => {
  await host?.stop();
  await mitm?.stop();
  rmSync(scratch, { recursive: true, force: true });
});

let seq = 0;
/** An inventory with one worker `w` at the server, its known_hosts at `knownHosts` (or the default). */
function inventory(server: TestSshd, knownHosts?: string): string {
  const dir = join(scratch, `case-${++seq}`);
  mkdirSync(join(dir, 'src'), { recursive: true });
  writeFileSync(join(dir, 'src', 'Containerfile'), 'FROM scratch\n');
  const kh = knownHosts ? `, known_hosts: ${knownHosts}` : '';
  const file = join(dir, 'farm.yaml');
  writeFileSync(file, `version: 1\nsource: { containerfile: src/Containerfile, context: src }\nworkers:\n  - { name: w, host: 127.0.0.1, port: ${server.port}, arch: x86_64${kh} }\n`);
  return file;
}

function knownHostsFile(name: string, lines: string[], hashed = false): string {
  const file = join(scratch, name);
  writeFileSync(file, lines.join('\n') + '\n', { mode: 0o600 });
  if (hashed) execFileSync('ssh-keygen', ['-q', '-H', '-f', file], { stdio: 'ignore' });
  return file;
}

const trust = (inv: string, opts: { stdin?: string; home?: string; extra?: string[] } = {}) =>
  cli(['workers', 'trust', 'w', '-i', inv, ...(opts.extra ?? [])], { stdin: opts.stdin ?? '', env: { HOME: opts.home ?? join(scratch, 'nohome') } });

describe('farm workers trust', () => {
  it('creates ~/.ssh (0700) and known_hosts (0600) on a fresh machine, then says "already trusted"', async () => {
    const home = join(scratch, 'home');
    const inv = inventory(host);
    const first = await trust(inv, { stdin: 'y\n', home });
    expect(first.stderr).toMatch(/w \(127\.0\.0\.1:\d+\) presents ssh-ed25519 SHA256:/);
    expect(first.code).toBe(0);
    const file = join(home, '.ssh', 'known_hosts');
    expect(statSync(join(home, '.ssh')).mode & 0o777).toBe(0o700);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const ed = host.hostKeys[0]!;
    expect(readFileSync(file, 'utf8')).toBe(`[127.0.0.1]:${host.port} ${ed.publicLine}\n`);
    expect(first.stdout).toContain(`trusted w: ssh-ed25519 ${ed.fingerprint} added to ${file}`);

    // Nothing to confirm the second time (stdin is empty), nothing added.
    const again = await trust(inv, { home });
    expect(again.code).toBe(0);
    expect(again.stdout).toContain(`already trusted: w (127.0.0.1:${host.port}) presents ssh-ed25519 ${ed.fingerprint}, recorded in ${file} line 1`);
    expect(readFileSync(file, 'utf8')).toBe(`[127.0.0.1]:${host.port} ${ed.publicLine}\n`);
  });

  it('answers "already trusted" for a host whose other key type is the recorded one (no false alarm)', async () => {
    const ecdsa = host.hostKeys[1]!;
    const file = knownHostsFile('kh-ecdsa', [`[127.0.0.1]:${host.port} ${ecdsa.publicLine}`]);
    const r = await trust(inventory(host, file), { extra: ['--json'] });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ worker: 'w', keyType: ecdsa.keyType, fingerprint: ecdsa.fingerprint, file, status: 'already trusted' });
    expect(readFileSync(file, 'utf8')).toBe(`[127.0.0.1]:${host.port} ${ecdsa.publicLine}\n`);
  });

  for (const hashed of [false, true]) {
    it(`refuses an ecdsa key where ed25519 is recorded${hashed ? ' (hashed known_hosts)' : ''}: both fingerprints and the fix, nothing written`, async () => {
      const recorded = host.hostKeys[0]!; // the real host's ed25519 key, recorded for this address
      const file = knownHostsFile(`kh-mitm-${hashed}`, ['# kept as is', `[127.0.0.1]:${mitm.port} ${recorded.publicLine}`], hashed);
      const before = readFileSync(file, 'utf8');
      for (const extra of [[], ['--yes']]) {
        const r = await trust(inventory(mitm, file), { stdin: 'y\n', extra });
        expect(r.code).toBe(1);
        expect(r.stderr).toContain(`presented ${mitm.hostKey.keyType} ${mitm.hostKey.fingerprint}`);
        expect(r.stderr).toContain(`ssh-ed25519 ${recorded.fingerprint} (${file} line 2)`);
        expect(r.stderr).toContain('Not trusted; known_hosts is unchanged.');
        expect(r.stderr).toContain(`ssh-keygen -R '[127.0.0.1]:${mitm.port}' -f ${file}`);
        expect(r.stderr).toContain('farm workers trust w` again');
        expect(r.stderr).not.toContain('Trust this key');
        expect(r.stdout).toBe('');
        expect(readFileSync(file, 'utf8')).toBe(before);
      }
    });
  }

  it('refuses a different key of the same type', async () => {
    const stale = generateKey(scratch, 'stale-ed');
    const file = knownHostsFile('kh-stale', [`[127.0.0.1]:${host.port} ${stale.publicLine}`]);
    const r = await trust(inventory(host, file), { stdin: 'y\n' });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`HOST KEY CHANGED for w (127.0.0.1:${host.port})`);
    expect(r.stderr).toContain(stale.fingerprint);
    expect(r.stderr).toContain(host.hostKeys[0]!.fingerprint);
    expect(readFileSync(file, 'utf8')).toBe(`[127.0.0.1]:${host.port} ${stale.publicLine}\n`);
  });

  it('after the stale line is removed as the error says, trusts the new key', async () => {
    const recorded = host.hostKeys[0]!;
    const file = knownHostsFile('kh-fixed', [`[127.0.0.1]:${mitm.port} ${recorded.publicLine}`]);
    execFileSync('ssh-keygen', ['-R', `[127.0.0.1]:${mitm.port}`, '-f', file], { stdio: 'ignore' });
    const r = await trust(inventory(mitm, file), { extra: ['--yes', '--json'] });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ status: 'added', fingerprint: mitm.hostKey.fingerprint });
    expect(readFileSync(file, 'utf8')).toContain(`[127.0.0.1]:${mitm.port} ${mitm.hostKey.publicLine}\n`);
  });

  it('changes nothing when the user does not answer yes', async () => {
    const file = join(scratch, 'declined', 'known_hosts');
    for (const stdin of ['n\n', '']) {
      const r = await trust(inventory(host, file), { stdin });
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('not trusted; nothing changed');
      expect(existsSync(file)).toBe(false);
    }
  });
});
