import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FarmError } from '../../src/core/errors.ts';
import { rejection } from '../support/assert.ts';
import {
  blobKeyType,
  checkHostKey,
  fingerprint,
  hostKeyAlgorithms,
  knownHostsName,
  lookupKnownHosts,
  type HostKeyPolicy,
} from '../../src/core/hostkeys.ts';
import { hostKeyError } from '../../workers/ssh/errors.ts';
import { trustHostKey } from '../../workers/ssh/trust.ts';

interface GenKey {
  type: string;
  b64: string;
  blob: Buffer;
  /** What OpenSSH itself prints for the key. */
  sshKeygenFingerprint: string;
}

let dir: string;
const keys: Record<string, GenKey> = {};

function genKey(name: string, type: string): GenKey {
  const file = join(dir, name);
  execFileSync('ssh-keygen', ['-q', '-t', type, '-N', '', '-C', '', '-f', file]);
  const [t, b64] = readFileSync(`${file}.pub`, 'utf8').trim().split(/\s+/) as [string, string];
  const fp = execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', `${file}.pub`]).toString().split(/\s+/)[1]!;
  return { type: t, b64, blob: Buffer.from(b64, 'base64'), sshKeygenFingerprint: fp };
}

const worker = { name: 'lab-x86_64', host: '10.231.0.11', port: 22 };
const worker2222 = { name: 'lab-2222', host: '10.231.0.11', port: 2222 };

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'farm-hostkeys-'));
  keys.ed = genKey('ed', 'ed25519');
  keys.ed2 = genKey('ed2', 'ed25519');
  keys.ec = genKey('ec', 'ecdsa');
  keys.rsa = genKey('rsa', 'rsa');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function knownHosts(name: string, lines: string[], hashed = false): string {
  const file = join(dir, name);
  writeFileSync(file, lines.join('\n') + '\n');
  if (hashed) execFileSync('ssh-keygen', ['-q', '-H', '-f', file], { stdio: 'ignore' });
  return file;
}

describe('fingerprint', () => {
  it('matches ssh-keygen -lf for every key type', () => {
    for (const k of Object.values(keys)) {
      expect(fingerprint(k.blob)).toBe(k.sshKeygenFingerprint);
      expect(fingerprint(k.blob)).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
      expect(blobKeyType(k.blob)).toBe(k.type);
    }
  });

  it('rejects a malformed blob', () => {
    expect(() => blobKeyType(Buffer.from([0, 0, 0, 99, 1]))).toThrow(FarmError);
    expect(() => blobKeyType(Buffer.alloc(2))).toThrow(/too short/);
  });
});

describe('knownHostsName', () => {
  it('uses [host]:port off port 22', () => {
    expect(knownHostsName('h', 22)).toBe('h');
    expect(knownHostsName('h', 2222)).toBe('[h]:2222');
  });
});

describe('lookupKnownHosts (ssh-keygen -F)', () => {
  it('finds plain, hashed and port entries with line numbers', async () => {
    const lines = [
      '# a comment',
      `10.231.0.11 ${keys.ed!.type} ${keys.ed!.b64}`,
      `[10.231.0.11]:2222 ${keys.ec!.type} ${keys.ec!.b64} some comment`,
      `other.host ${keys.rsa!.type} ${keys.rsa!.b64}`,
    ];
    for (const hashed of [false, true]) {
      const file = knownHosts(`kh-${hashed}`, lines, hashed);
      const at22 = await lookupKnownHosts(file, '10.231.0.11', 22);
      expect(at22.map((e) => [e.keyType, e.fingerprint, e.line, e.marker])).toEqual([
        [keys.ed!.type, keys.ed!.sshKeygenFingerprint, 2, undefined],
      ]);
      const at2222 = await lookupKnownHosts(file, '10.231.0.11', 2222);
      expect(at2222.map((e) => [e.keyType, e.line])).toEqual([[keys.ec!.type, 3]]);
      expect(await lookupKnownHosts(file, '10.231.0.99', 22)).toEqual([]);
    }
  });

  it('returns no entries for a missing file', async () => {
    expect(await lookupKnownHosts(join(dir, 'nope', 'known_hosts'), 'h', 22)).toEqual([]);
  });

  it('keeps markers and skips lines whose blob does not match their type', async () => {
    const file = knownHosts('kh-markers', [
      `@revoked 10.231.0.11 ${keys.ed2!.type} ${keys.ed2!.b64}`,
      `@cert-authority 10.231.0.11 ${keys.rsa!.type} ${keys.rsa!.b64}`,
      `10.231.0.11 ssh-ed25519 ${keys.ec!.b64}`,
      `10.231.0.11 ${keys.ed!.type} ${keys.ed!.b64}`,
    ]);
    const entries = await lookupKnownHosts(file, '10.231.0.11', 22);
    expect(entries.map((e) => [e.keyType, e.line, e.marker])).toEqual([
      [keys.ed2!.type, 1, 'revoked'],
      [keys.rsa!.type, 2, 'cert-authority'],
      [keys.ed!.type, 4, undefined],
    ]);
  });
});

describe('checkHostKey', () => {
  const policyOf = async (lines: string[], name: string): Promise<HostKeyPolicy> => {
    const file = knownHosts(name, lines);
    return { kind: 'known_hosts', file, entries: await lookupKnownHosts(file, worker.host, worker.port) };
  };

  it('accepts a pinned fingerprint and refuses a different one, naming both', () => {
    const ok = checkHostKey({ kind: 'pinned', fingerprint: keys.ed!.sshKeygenFingerprint }, keys.ed!.blob);
    expect(ok.status).toBe('ok');
    const policy: HostKeyPolicy = { kind: 'pinned', fingerprint: keys.ed2!.sshKeygenFingerprint };
    const bad = checkHostKey(policy, keys.ed!.blob);
    expect(bad.status).toBe('changed');
    const err = hostKeyError(worker, policy, bad)!;
    expect(err.code).toBe('HOST_KEY');
    expect(err.message).toContain(keys.ed!.sshKeygenFingerprint);
    expect(err.message).toContain(keys.ed2!.sshKeygenFingerprint);
    expect(err.hint).toContain('host_key');
  });

  it('accepts a known key and reports unknown hosts with the presented fingerprint', async () => {
    const policy = await policyOf([`10.231.0.11 ${keys.ed!.type} ${keys.ed!.b64}`], 'kh-ok');
    expect(checkHostKey(policy, keys.ed!.blob).status).toBe('ok');
    expect(hostKeyError(worker, policy, checkHostKey(policy, keys.ed!.blob))).toBeUndefined();

    const empty = await policyOf([`elsewhere ${keys.ed!.type} ${keys.ed!.b64}`], 'kh-unknown');
    const check = checkHostKey(empty, keys.ed!.blob);
    expect(check).toMatchObject({ status: 'unknown', presented: { keyType: 'ssh-ed25519', fingerprint: keys.ed!.sshKeygenFingerprint } });
    const err = hostKeyError(worker, empty, check)!;
    expect(err.message).toContain(`host key for lab-x86_64 (10.231.0.11:22) is not known`);
    expect(err.message).toContain(`it presented ssh-ed25519 ${keys.ed!.sshKeygenFingerprint}`);
    expect(err.hint).toBe('verify the fingerprint out of band, then run `farm workers trust lab-x86_64`');
  });

  it('reports a changed key with the file and line of the stale entry', async () => {
    const policy = await policyOf(['# x', `10.231.0.11 ${keys.ed2!.type} ${keys.ed2!.b64}`], 'kh-changed');
    const check = checkHostKey(policy, keys.ed!.blob);
    expect(check.status).toBe('changed');
    const err = hostKeyError(worker, policy, check)!;
    expect(err.message).toContain('HOST KEY CHANGED');
    expect(err.message).toContain(keys.ed!.sshKeygenFingerprint);
    expect(err.message).toContain(`${keys.ed2!.sshKeygenFingerprint} (${policy.kind === 'known_hosts' ? policy.file : ''} line 2)`);
    expect(err.hint).toContain('ssh-keygen -R');
  });

  it('refuses a revoked key even when another line lists it', async () => {
    const policy = await policyOf(
      [`10.231.0.11 ${keys.ed!.type} ${keys.ed!.b64}`, `@revoked * ${keys.ed!.type} ${keys.ed!.b64}`],
      'kh-revoked',
    );
    const check = checkHostKey(policy, keys.ed!.blob);
    expect(check.status).toBe('revoked');
    expect(hostKeyError(worker, policy, check)!.message).toMatch(/REVOKED.*line 2/);
  });

  it('never accepts a @cert-authority key as a host key', async () => {
    const policy = await policyOf([`@cert-authority 10.231.0.11 ${keys.ed!.type} ${keys.ed!.b64}`], 'kh-ca');
    expect(checkHostKey(policy, keys.ed!.blob).status).toBe('unknown');
    expect(hostKeyAlgorithms(policy)).toBeUndefined();
  });

  it('limits offered host key algorithms to the known types', async () => {
    const policy = await policyOf(
      [`10.231.0.11 ${keys.rsa!.type} ${keys.rsa!.b64}`, `10.231.0.11 ${keys.ec!.type} ${keys.ec!.b64}`],
      'kh-algos',
    );
    // RSA keys sign with SHA-2 only: SHA-1 `ssh-rsa` signatures are refused (see ALGORITHMS_FOR_TYPE).
    expect(hostKeyAlgorithms(policy)).toEqual(['rsa-sha2-512', 'rsa-sha2-256', 'ecdsa-sha2-nistp256']);
    expect(hostKeyAlgorithms({ kind: 'pinned', fingerprint: keys.ed!.sshKeygenFingerprint })).toBeUndefined();
  });
});

describe('trustHostKey', () => {
  it('creates the file 0600 in a new 0700 directory and appends [host]:port lines; again is "already"', async () => {
    const file = join(dir, 'new', 'sub', 'known_hosts');
    expect(await trustHostKey(worker2222, file, keys.ed!.blob, keys.ed!.type)).toBe('added');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'new', 'sub')).mode & 0o777).toBe(0o700);
    expect(readFileSync(file, 'utf8')).toBe(`[10.231.0.11]:2222 ssh-ed25519 ${keys.ed!.b64}\n`);
    expect(await trustHostKey(worker2222, file, keys.ed!.blob, keys.ed!.type)).toBe('already');
    expect(readFileSync(file, 'utf8')).toBe(`[10.231.0.11]:2222 ssh-ed25519 ${keys.ed!.b64}\n`);
  });

  it('adds a newline when the file lacks a final one', async () => {
    const file = join(dir, 'kh-nonl');
    writeFileSync(file, `other ${keys.rsa!.type} ${keys.rsa!.b64}`);
    await trustHostKey(worker, file, keys.ed!.blob, keys.ed!.type);
    expect(readFileSync(file, 'utf8').split('\n')).toEqual([
      `other ${keys.rsa!.type} ${keys.rsa!.b64}`,
      `10.231.0.11 ssh-ed25519 ${keys.ed!.b64}`,
      '',
    ]);
  });

  // A man in the middle offering ecdsa where ed25519 is recorded looks exactly like a new key type.
  // (The keys are made in beforeAll, hence the functions.)
  const cases: Array<{ label: string; recorded: () => GenKey; name: (k: GenKey) => string; hashed: boolean; w: typeof worker }> = [
    { label: 'a key of another type', recorded: () => keys.ec!, name: () => '10.231.0.11', hashed: false, w: worker },
    { label: 'a key of another type, hashed', recorded: () => keys.ec!, name: () => '10.231.0.11', hashed: true, w: worker },
    { label: 'a key of another type under [host]:port', recorded: () => keys.rsa!, name: () => '[10.231.0.11]:2222', hashed: false, w: worker2222 },
    { label: 'a different key of the same type', recorded: () => keys.ed2!, name: () => '10.231.0.11', hashed: false, w: worker },
  ];
  for (const c of cases) {
    it(`refuses any key for a host with ${c.label}, naming both fingerprints and the fix`, async () => {
      const recorded = c.recorded();
      const file = knownHosts(`kh-refuse-${c.label.replace(/\W+/g, '-')}`, [`${c.name(recorded)} ${recorded.type} ${recorded.b64}`], c.hashed);
      const before = readFileSync(file, 'utf8');
      const err = await rejection(trustHostKey(c.w, file, keys.ed!.blob, keys.ed!.type));
      expect(err.code).toBe('HOST_KEY');
      expect(err.message).toContain(`it presented ssh-ed25519 ${keys.ed!.sshKeygenFingerprint}`);
      expect(err.message).toContain(`${recorded.type} ${recorded.sshKeygenFingerprint} (${file} line 1)`);
      expect(err.message).toContain('Not trusted; known_hosts is unchanged.');
      expect(err.hint).toContain(`ssh-keygen -R '${knownHostsName(c.w.host, c.w.port)}' -f ${file}`);
      expect(readFileSync(file, 'utf8')).toBe(before);
    });
  }

  it('refuses a revoked key', async () => {
    const file = knownHosts('kh-trust-revoked', [`@revoked * ${keys.ed!.type} ${keys.ed!.b64}`]);
    await expect(trustHostKey(worker, file, keys.ed!.blob, keys.ed!.type)).rejects.toThrow(/REVOKED/);
    expect(readFileSync(file, 'utf8').trim().split('\n')).toHaveLength(1);
  });

  it('refuses a type that does not match the blob', async () => {
    await expect(trustHostKey(worker, join(dir, 'kh-x'), keys.ed!.blob, 'ssh-rsa')).rejects.toThrow(/does not match/);
  });
});
