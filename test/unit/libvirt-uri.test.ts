import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FarmError } from '../../src/core/errors.ts';
import { connectUri, displayUri, parseHypervisorUri, sshEndpoint, uriLocation, userSshCommand } from '../../uploaders/libvirt/uri.ts';
import { wrapperScript } from '../../uploaders/libvirt/ssh-wrapper.ts';

const W = '/tmp/farm-libvirt-x/ssh';

function params(uri: string): Array<[string, string]> {
  const q = uri.split('?')[1] ?? '';
  return q.split('&').map((p) => {
    const i = p.indexOf('=');
    return [p.slice(0, i), decodeURIComponent(p.slice(i + 1))];
  });
}

describe('connectUri', () => {
  it('appends keyfile, no_verify=0, no_tty=1 and the wrapper as command', () => {
    const uri = connectUri('qemu+ssh://root@10.231.0.21/system', { command: W, identityFile: '/keys/id_ed25519' });
    expect(uri).toBe(`qemu+ssh://root@10.231.0.21/system?keyfile=/keys/id_ed25519&no_verify=0&no_tty=1&command=${W}`);
  });

  it('keeps the query parameters already in the URI, in order', () => {
    const uri = connectUri('qemu+ssh://admin@hv.example.com:2222/system?socket=/run/libvirt/libvirt-sock&mode=legacy', { command: W });
    expect(uri.startsWith('qemu+ssh://admin@hv.example.com:2222/system?socket=/run/libvirt/libvirt-sock&mode=legacy&')).toBe(true);
    expect(params(uri).map(([k]) => k)).toEqual(['socket', 'mode', 'no_verify', 'no_tty', 'command']);
  });

  it('replaces the parameters the farm owns instead of duplicating them', () => {
    const uri = connectUri('qemu+ssh://root@hv/system?keyfile=/old&no_tty=0&command=/usr/bin/ssh&no_verify=0', { command: W, identityFile: '/new' });
    expect(params(uri)).toEqual([
      ['keyfile', '/new'],
      ['no_verify', '0'],
      ['no_tty', '1'],
      ['command', W],
    ]);
  });

  it("keeps the URI's own keyfile when the inventory gives no identity_file", () => {
    const uri = connectUri('qemu+ssh://root@hv/system?keyfile=/home/u/.ssh/hv', { command: W });
    expect(params(uri)[0]).toEqual(['keyfile', '/home/u/.ssh/hv']);
  });

  it('refuses no_verify=1 (it turns host key checking off)', () => {
    for (const bad of ['qemu+ssh://root@hv/system?no_verify=1', 'qemu+ssh://root@hv/system?x=1&no_verify=yes']) {
      expect(() => connectUri(bad, { command: W })).toThrow(FarmError);
      expect(() => connectUri(bad, { command: W })).toThrow(/no_verify/);
    }
  });

  it('URI-escapes values so that &, = and spaces in paths cannot add parameters', () => {
    const uri = connectUri('qemu+ssh://root@hv/system', { command: '/tmp/a b&command=/bin/evil/ssh', identityFile: '/k/x=y;z' });
    expect(uri.split('?')[1]!.split('&')).toHaveLength(4);
    expect(params(uri)).toEqual([
      ['keyfile', '/k/x=y;z'],
      ['no_verify', '0'],
      ['no_tty', '1'],
      ['command', '/tmp/a b&command=/bin/evil/ssh'],
    ]);
  });

  it('writes a literal % in the key path as %% (ssh expands %-tokens in identity files)', () => {
    const uri = connectUri('qemu+ssh://root@hv/system', { command: W, identityFile: '/k/100%/id' });
    expect(params(uri)[0]).toEqual(['keyfile', '/k/100%%/id']);
  });

  it('rejects what is not a qemu+ssh URI', () => {
    expect(() => connectUri('qemu:///system', { command: W })).toThrow(/qemu\+ssh/);
    expect(() => connectUri('qemu+ssh://', { command: W })).toThrow(FarmError);
  });
});

describe('URI parts', () => {
  it('parses user, host, port, path and parameters', () => {
    const p = parseHypervisorUri('qemu+ssh://root@[fd00::21]:2222/system?no_tty=1');
    expect(p).toMatchObject({ scheme: 'qemu+ssh', user: 'root', host: '[fd00::21]', port: 2222, path: '/system' });
    expect(sshEndpoint('qemu+ssh://root@[fd00::21]:2222/system')).toEqual({ host: 'fd00::21', port: 2222 });
    expect(sshEndpoint('qemu+ssh://hv/system')).toEqual({ host: 'hv', port: 22 });
  });

  it('shows URIs without parameters or password', () => {
    expect(displayUri('qemu+ssh://root:hunter2@hv:2222/system?keyfile=/secret/key')).toBe('qemu+ssh://root@hv:2222/system');
    expect(displayUri('not a uri?keyfile=/x')).toBe('not a uri');
    expect(displayUri('garbage://u:pw@h/x')).not.toContain('pw');
  });

  it('location is the host, with the port when not 22', () => {
    expect(uriLocation('qemu+ssh://root@10.231.0.21/system')).toBe('10.231.0.21');
    expect(uriLocation('qemu+ssh://root@10.231.0.21:22/system')).toBe('10.231.0.21');
    expect(uriLocation('qemu+ssh://root@hv:2222/system')).toBe('hv:2222');
  });

  it("reads the URI's own ssh command", () => {
    expect(userSshCommand('qemu+ssh://hv/system?command=/opt/openssh/bin/ssh')).toBe('/opt/openssh/bin/ssh');
    expect(userSshCommand('qemu+ssh://hv/system')).toBeUndefined();
  });
});

describe('ssh wrapper script', () => {
  const dir = mkdtempSync(join(tmpdir(), 'farm-libvirt-unit-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  // A stand-in "ssh" that records its argv one per line (NUL-separated to keep newlines).
  const fakeSsh = join(dir, "fake ssh'$(x)");
  writeFileSync(fakeSsh, `#!/bin/sh\nfor a in "$@"; do printf '%s\\0' "$a"; done > "$0.args"\n`);
  chmodSync(fakeSsh, 0o755);

  function runWrapper(knownHosts: string | undefined, args: string[]): string[] {
    const script = join(dir, 'wrapper');
    writeFileSync(script, wrapperScript({ ssh: fakeSsh, knownHosts, hostKeyAlgorithms: ['ssh-ed25519'], identityOnly: true, connectTimeoutS: 7, keepaliveS: 9 }));
    chmodSync(script, 0o700);
    execFileSync(script, args);
    return readFileSync(`${fakeSsh}.args`, 'utf8').split('\0').slice(0, -1);
  }

  it('forces strict host key checking against the known_hosts file, then passes libvirt argv through unchanged', () => {
    const libvirtArgs = ['-l', 'root', '-i', '/k/id', '-T', '-e', 'none', '--', 'hv', "sh -c 'which virt-ssh-helper; $(reboot)'"];
    const argv = runWrapper('/lab/ssh/known_hosts', libvirtArgs);
    const opts = argv.slice(0, argv.length - libvirtArgs.length);
    expect(argv.slice(opts.length)).toEqual(libvirtArgs);
    expect(opts).toContain('StrictHostKeyChecking=yes');
    expect(opts).toContain('BatchMode=yes');
    expect(opts).toContain('UserKnownHostsFile="/lab/ssh/known_hosts"');
    expect(opts).toContain('GlobalKnownHostsFile=/dev/null');
    expect(opts).toContain('HostKeyAlgorithms=ssh-ed25519');
    expect(opts).toContain('IdentitiesOnly=yes');
    expect(opts).toContain('ConnectTimeout=7');
    expect(opts).toContain('ServerAliveInterval=9');
    expect(opts.join(' ')).not.toMatch(/StrictHostKeyChecking=(no|accept-new)/);
  });

  it('quotes known_hosts paths with spaces, $ and quotes for the shell, and % for ssh', () => {
    const argv = runWrapper("/a b/$HOME/it's 100%/known_hosts", ['hv']);
    expect(argv).toContain(`UserKnownHostsFile="/a b/$HOME/it's 100%%/known_hosts"`);
    expect(argv.at(-1)).toBe('hv');
  });

  it('refuses a known_hosts path ssh could not read as one value', () => {
    expect(() => wrapperScript({ ssh: 'ssh', knownHosts: '/a"b', hostKeyAlgorithms: undefined, identityOnly: false, connectTimeoutS: 1, keepaliveS: 1 })).toThrow(FarmError);
  });

  it("ssh itself reads the options as intended (ssh -G)", () => {
    const script = join(dir, 'real-wrapper');
    writeFileSync(script, wrapperScript({ ssh: 'ssh', knownHosts: '/x y/known 50%', hostKeyAlgorithms: undefined, identityOnly: true, connectTimeoutS: 20, keepaliveS: 15 }));
    chmodSync(script, 0o700);
    // -G prints the resolved configuration without connecting; later (libvirt's) -o cannot override.
    const out = execFileSync(script, ['-G', '-o', 'StrictHostKeyChecking=no', 'hv.example'], { stdio: ['ignore', 'pipe', 'ignore'] }).toString();
    expect(out).toMatch(/^stricthostkeychecking true$/m);
    expect(out).toMatch(/^userknownhostsfile \/x y\/known 50%$/m);
    expect(out).toMatch(/^batchmode yes$/m);
  });
});
