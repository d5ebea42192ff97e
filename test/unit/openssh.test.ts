import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { workerSchema } from '../../src/inventory/schema.ts';
import { hostKeyFromBlob } from '../../src/core/hostkeys.ts';
import { OpenSshBulk, findSshClient, knownHostsLine, sshArgv } from '../../workers/ssh/openssh.ts';
import { commandLine } from '../../src/core/quote.ts';

const worker = workerSchema.parse({ name: 'w1', host: 'builder.example.org', port: 2222, user: 'farm', arch: 'x86_64' });
const line = commandLine(['dd', 'if=/var/lib/farm/out/disk raw', '$(touch pwned)']);

/** The value of each `-o Key=value` option. */
function options(argv: string[]): Map<string, string> {
  const out = new Map<string, string>();
  argv.forEach((a, i) => {
    if (a === '-o') {
      const [k, ...v] = argv[i + 1]!.split('=');
      out.set(k!, v.join('='));
    }
  });
  return out;
}

describe('sshArgv', () => {
  const argv = sshArgv(worker, '/tmp/farm-ssh-x/known_hosts', { identityFile: '/keys/id farm' }, line);
  const o = options(argv);

  it('trusts only the verified key, from its own known_hosts, and never asks', () => {
    expect(o.get('StrictHostKeyChecking')).toBe('yes');
    expect(o.get('UserKnownHostsFile')).toBe('/tmp/farm-ssh-x/known_hosts');
    expect(o.get('GlobalKnownHostsFile')).toBe('/dev/null');
    expect(o.get('HostKeyAlias')).toBe('farm-worker-w1');
    expect(o.get('BatchMode')).toBe('yes');
    expect(o.get('UpdateHostKeys')).toBe('no');
  });

  it('reads no ssh_config and forwards nothing', () => {
    expect(argv.slice(0, 2)).toEqual(['-F', '/dev/null']);
    expect(argv).toEqual(expect.arrayContaining(['-T', '-x', '-a']));
    expect(o.get('ClearAllForwardings')).toBe('yes');
    expect(o.get('ControlPath')).toBe('none');
    expect(o.get('PermitLocalCommand')).toBe('no');
  });

  it('goes to the worker’s host, port and user with its identity file only', () => {
    expect(argv[argv.indexOf('-p') + 1]).toBe('2222');
    expect(argv[argv.indexOf('-l') + 1]).toBe('farm');
    expect(argv[argv.indexOf('-i') + 1]).toBe('/keys/id farm');
    expect(o.get('IdentitiesOnly')).toBe('yes');
    expect(o.get('IdentityAgent')).toBe('none');
  });

  it('prefers AES-GCM', () => {
    expect(o.get('Ciphers')!.split(',')[0]).toBe('aes128-gcm@openssh.com');
  });

  it('ends with -- host and the already quoted command line as one argument', () => {
    expect(argv.slice(-3)).toEqual(['--', 'builder.example.org', line]);
  });

  it('uses the agent when there is no identity file', () => {
    const a = sshArgv(worker, '/k', { agent: '/run/user/1000/ssh-agent.sock' }, 'true');
    expect(options(a).get('IdentityAgent')).toBe('/run/user/1000/ssh-agent.sock');
    expect(a).not.toContain('-i');
  });

  it('makes the master a login that listens on the private socket', () => {
    const m = sshArgv(worker, '/k', { agent: '/s' }, 'exec cat >/dev/null', { control: { mode: 'master', socket: '/tmp/farm-ssh-x/mux' } });
    const mo = options(m);
    expect(m).toContain('-M');
    expect(mo.get('ControlMaster')).toBe('yes');
    expect(mo.get('ControlPath')).toBe('/tmp/farm-ssh-x/mux');
    expect(mo.get('ControlPersist')).toBe('no'); // stays our own child, ended by its PID
    expect(mo.get('StrictHostKeyChecking')).toBe('yes');
    expect(m.slice(-3)).toEqual(['--', 'builder.example.org', 'exec cat >/dev/null']);
  });

  it('sends a stream over the master, keeping everything it needs to connect alone', () => {
    const c = sshArgv(worker, '/k', { identityFile: '/keys/id' }, line, { control: { mode: 'client', socket: '/tmp/farm-ssh-x/mux' } });
    const co = options(c);
    expect(co.get('ControlMaster')).toBe('no');
    expect(co.get('ControlPath')).toBe('/tmp/farm-ssh-x/mux');
    expect(co.get('StrictHostKeyChecking')).toBe('yes'); // the fallback when the master is gone
    expect(co.get('UserKnownHostsFile')).toBe('/k');
    expect(c).not.toContain('-M');
    expect(c.slice(-3)).toEqual(['--', 'builder.example.org', line]);
  });

  it('gives odd worker names a safe alias', () => {
    const odd = { ...worker, name: 'a b/c' };
    expect(options(sshArgv(odd, '/k', { agent: '/s' }, 'true')).get('HostKeyAlias')).toBe('farm-worker-a_b_c');
  });
});

describe('knownHostsLine', () => {
  it('writes the alias, key type and key', () => {
    const blob = Buffer.concat([Buffer.from([0, 0, 0, 11]), Buffer.from('ssh-ed25519'), Buffer.from([0, 0, 0, 32]), Buffer.alloc(32, 7)]);
    const key = hostKeyFromBlob(blob);
    expect(knownHostsLine('farm-worker-w1', key)).toBe(`farm-worker-w1 ssh-ed25519 ${blob.toString('base64')}\n`);
  });
});

describe('findSshClient', () => {
  const dir = mkdtempSync(join(tmpdir(), 'farm-findssh-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('finds an executable ssh on PATH and nothing where there is none', () => {
    expect(findSshClient(`${join(dir, 'none')}:${dir}`)).toBeUndefined();
    writeFileSync(join(dir, 'ssh'), '#!/bin/sh\n');
    expect(findSshClient(`${join(dir, 'none')}:${dir}`)).toBeUndefined(); // not executable
    chmodSync(join(dir, 'ssh'), 0o755);
    expect(findSshClient(`${join(dir, 'none')}:${dir}`)).toBe(join(dir, 'ssh'));
  });
});

describe('OpenSshBulk.dispose', () => {
  const scratch = mkdtempSync(join(tmpdir(), 'farm-openssh-dispose-'));
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));
  const key = hostKeyFromBlob(Buffer.from('AAAAC3NzaC1lZDI1NTE5AAAAIGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE', 'base64'));

  /** A stand-in for `ssh -M`: runs `first`, then opens its control socket and stays. */
  function fakeMaster(name: string, first: string[], python = ''): string {
    const fake = join(scratch, name);
    writeFileSync(
      fake,
      [
        '#!/bin/sh',
        ...first,
        'for a in "$@"; do case "$a" in ControlPath=*) sock=${a#ControlPath=};; esac; done',
        `exec python3 -c "import signal,socket,sys,time; ${python}s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(); time.sleep(600)" "$sock"`,
        '',
      ].join('\n'),
    );
    chmodSync(fake, 0o755);
    return fake;
  }

  it('kills a master that does not end on SIGTERM (one stuck writing to a dead link) after the grace period', async () => {
    // Stands in for ssh -M: opens its control socket, then ignores SIGTERM and stays.
    const fake = fakeMaster('ssh', ["trap '' TERM"], 'signal.signal(signal.SIGTERM, signal.SIG_IGN); ');
    const bulk = await OpenSshBulk.prepare(fake, worker, key, { identityFile: '/nonexistent' });
    expect(await bulk.ready()).toBe(true);
    const pid = bulk.masterPid!;
    const t0 = performance.now();
    await bulk.dispose(300);
    const took = performance.now() - t0;
    expect(took).toBeGreaterThanOrEqual(290);
    expect(took).toBeLessThan(2_000);
    expect(() => process.kill(pid, 0)).toThrow();
  });

  it('starts ssh with the minimal environment and the agent, never the farm\'s secrets', async () => {
    const envFile = join(scratch, 'env.txt');
    const fake = fakeMaster('ssh-env', [`env > ${envFile}`]);
    const agentBefore = process.env.SSH_AUTH_SOCK;
    process.env.AWS_SECRET_ACCESS_KEY = 'farm-marker-secret';
    process.env.SSH_AUTH_SOCK = '/tmp/farm-marker-agent';
    try {
      const bulk = await OpenSshBulk.prepare(fake, worker, key, { agent: '/tmp/farm-marker-agent' });
      expect(await bulk.ready()).toBe(true);
      await bulk.dispose(300);
      const env = readFileSync(envFile, 'utf8');
      expect(env).not.toContain('farm-marker-secret');
      expect(env).toMatch(/^SSH_AUTH_SOCK=\/tmp\/farm-marker-agent$/m);
    } finally {
      delete process.env.AWS_SECRET_ACCESS_KEY;
      if (agentBefore === undefined) delete process.env.SSH_AUTH_SOCK;
      else process.env.SSH_AUTH_SOCK = agentBefore;
    }
  });
});
