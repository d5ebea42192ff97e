import { describe, expect, it } from 'vitest';
import { closest, editDistance, suggestArch } from '../../src/inventory/suggest.ts';
import { formatPath } from '../../src/inventory/problems.ts';
import { isSecretKey } from '../../src/inventory/secrets.ts';

describe('editDistance', () => {
  it('counts insertions, deletions, substitutions and adjacent swaps as one edit each', () => {
    expect(editDistance('host', 'host')).toBe(0);
    expect(editDistance('hostt', 'host')).toBe(1);
    expect(editDistance('hst', 'host')).toBe(1);
    expect(editDistance('hosp', 'host')).toBe(1);
    expect(editDistance('regoin', 'region')).toBe(1);
    expect(editDistance('', 'abc')).toBe(3);
    expect(editDistance('kitten', 'sitting')).toBe(3);
  });
});

describe('closest', () => {
  const keys = ['name', 'host', 'port', 'user', 'arch', 'identity_file', 'known_hosts', 'host_key', 'max_builds'];

  it('finds typos, case and separator slips, and truncations', () => {
    expect(closest('hostt', keys)).toBe('host');
    expect(closest('HostKey', keys)).toBe('host_key');
    expect(closest('known-hosts', keys)).toBe('known_hosts');
    expect(closest('identity', keys)).toBe('identity_file');
    expect(closest('max_bulids', keys)).toBe('max_builds');
  });

  it('suggests nothing when nothing is close', () => {
    expect(closest('dockerfile', keys)).toBeUndefined();
    expect(closest('zz', keys)).toBeUndefined();
    expect(closest('', keys)).toBeUndefined();
  });
});

describe('suggestArch', () => {
  it.each([
    ['arm64', 'aarch64'],
    ['ARM64', 'aarch64'],
    ['armv8', 'aarch64'],
    ['aarch_64', 'aarch64'],
    ['amd64', 'x86_64'],
    ['x86-64', 'x86_64'],
    ['x64', 'x86_64'],
    ['ppc64', 'ppc64le'],
    ['ppc64el', 'ppc64le'],
    ['s390', 's390x'],
    ['s390X', 's390x'],
  ])('%s → %s', (input, arch) => {
    expect(suggestArch(input)).toBe(arch);
  });

  it('has no guess for unrelated names', () => {
    expect(suggestArch('riscv64')).toBeUndefined();
    expect(suggestArch('mips')).toBeUndefined();
  });
});

describe('formatPath', () => {
  it('writes list indexes in brackets and quotes keys that are not plain names', () => {
    expect(formatPath([])).toBe('');
    expect(formatPath(['workers', 1, 'arch'])).toBe('workers[1].arch');
    expect(formatPath(['arches', 'x86_64', 'targets', 0, 'tags', 'team.name'])).toBe('arches.x86_64.targets[0].tags["team.name"]');
  });
});

describe('isSecretKey', () => {
  it('recognises credential-looking names whatever their case or separators', () => {
    for (const key of ['password', 'OS_PASSWORD', 'passwd', 'secret', 'client_secret', 'token', 'auth-token', 'api_key', 'apiKey', 'IBMCLOUD_API_KEY', 'access_key', 'aws_access_key_id', 'secret_access_key', 'private_key']) {
      expect(isSecretKey(key), key).toBe(true);
    }
    for (const key of ['host_key', 'identity_file', 'known_hosts', 'bucket', 'region', 'keepalive_s', 'share_accounts']) {
      expect(isSecretKey(key), key).toBe(false);
    }
  });
});
