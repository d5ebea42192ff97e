import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FarmError } from '../../src/core/errors.ts';
import { configCandidates, resolveCloudConfig } from '../../uploaders/openstack/config.ts';

let root: string;
let cwd: string;
let home: string;

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'farm-os-config-'));
  cwd = join(root, 'work');
  home = join(root, 'home');
  mkdirSync(cwd, { recursive: true });
  mkdirSync(join(home, '.config', 'openstack'), { recursive: true });
});

afterEach(() => rmSync(root, { recursive: true, force: true }));

function cloud(name: string, auth: Record<string, string>, extra: Record<string, string> = {}): string {
  const lines = [`  ${name}:`, '    auth:', ...Object.entries(auth).map(([k, v]) => `      ${k}: "${v}"`)];
  for (const [k, v] of Object.entries(extra)) lines.push(`    ${k}: ${v}`);
  return lines.join('\n');
}

function write(file: string, ...clouds: string[]): string {
  writeFileSync(file, `clouds:\n${clouds.join('\n')}\n`);
  return file;
}

const PW = { auth_url: 'https://keystone.example.org:5000/v3', username: 'farm', password: 's3cret-pw', project_name: 'images' };

function caught(fn: () => unknown): FarmError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(FarmError);
    return err as FarmError;
  }
  throw new Error('expected an error');
}

describe('clouds.yaml search order', () => {
  it('lists OS_CLIENT_CONFIG_FILE first, then ./, ~/.config/openstack and /etc/openstack', () => {
    const files = configCandidates('clouds', { env: { OS_CLIENT_CONFIG_FILE: 'mine.yaml' }, cwd, home });
    expect(files[0]).toBe(join(cwd, 'mine.yaml'));
    const yamls = files.filter((f) => f.endsWith('/clouds.yaml'));
    expect(yamls).toEqual([join(cwd, 'clouds.yaml'), join(home, '.config/openstack/clouds.yaml'), '/etc/openstack/clouds.yaml']);
  });

  it('takes OS_CLIENT_CONFIG_FILE over ./clouds.yaml, and ./clouds.yaml over the home one', () => {
    write(join(home, '.config/openstack/clouds.yaml'), cloud('c', { ...PW, username: 'from-home' }));
    expect(resolveCloudConfig({ cloud: 'c', env: {}, cwd, home }).auth).toMatchObject({ username: 'from-home' });
    write(join(cwd, 'clouds.yaml'), cloud('c', { ...PW, username: 'from-cwd' }));
    expect(resolveCloudConfig({ cloud: 'c', env: {}, cwd, home }).auth).toMatchObject({ username: 'from-cwd' });
    const explicit = write(join(root, 'explicit.yaml'), cloud('c', { ...PW, username: 'from-env-file' }));
    const config = resolveCloudConfig({ cloud: 'c', env: { OS_CLIENT_CONFIG_FILE: explicit }, cwd, home });
    expect(config.auth).toMatchObject({ username: 'from-env-file' });
    expect(config.source).toBe(explicit);
  });

  it('says so when OS_CLIENT_CONFIG_FILE names a missing file', () => {
    const err = caught(() => resolveCloudConfig({ cloud: 'c', env: { OS_CLIENT_CONFIG_FILE: join(root, 'nope.yaml') }, cwd, home }));
    expect(err.message).toContain('nope.yaml, which does not exist');
  });

  it('merges secure.yaml over clouds.yaml', () => {
    const { password: _omit, ...noPassword } = PW;
    write(join(cwd, 'clouds.yaml'), cloud('c', noPassword, { region_name: 'RegionOne' }));
    writeFileSync(join(cwd, 'secure.yaml'), 'clouds:\n  c:\n    auth:\n      password: from-secure\n');
    const config = resolveCloudConfig({ cloud: 'c', env: {}, cwd, home });
    expect(config.auth).toMatchObject({ type: 'password', password: 'from-secure', username: 'farm' });
    expect(config.regionName).toBe('RegionOne');
  });
});

describe('choosing the cloud', () => {
  it("prefers the target's cloud over OS_CLOUD, and OS_CLOUD over OS_* variables", () => {
    write(join(cwd, 'clouds.yaml'), cloud('a', { ...PW, username: 'user-a' }), cloud('b', { ...PW, username: 'user-b' }));
    const env = { OS_CLOUD: 'b', OS_AUTH_URL: 'https://other/v3', OS_USERNAME: 'env-user', OS_PASSWORD: 'x', OS_PROJECT_NAME: 'p' };
    expect(resolveCloudConfig({ cloud: 'a', env, cwd, home }).auth).toMatchObject({ username: 'user-a' });
    const fromOsCloud = resolveCloudConfig({ env, cwd, home });
    expect(fromOsCloud.cloud).toBe('b');
    // A named cloud takes nothing from the OS_* auth variables.
    expect(fromOsCloud.authUrl).toBe('https://keystone.example.org:5000/v3');
    expect(fromOsCloud.auth).toMatchObject({ username: 'user-b' });
    const { OS_CLOUD: _omit, ...noCloud } = env;
    const fromEnv = resolveCloudConfig({ env: noCloud, cwd, home });
    expect(fromEnv.cloud).toBe('envvars');
    expect(fromEnv.auth).toMatchObject({ username: 'env-user', projectName: 'p' });
  });

  it('names the clouds that exist when the selected one does not', () => {
    write(join(cwd, 'clouds.yaml'), cloud('a', PW), cloud('b', PW));
    const err = caught(() => resolveCloudConfig({ env: { OS_CLOUD: 'typo' }, cwd, home }));
    expect(err.message).toContain("cloud 'typo' (OS_CLOUD) is not in");
    expect(err.hint).toContain('a, b');
  });

  it('says where it looked when there is no clouds.yaml', () => {
    const err = caught(() => resolveCloudConfig({ cloud: 'lab', env: {}, cwd, home }));
    expect(err.message).toContain('no clouds.yaml found');
    expect(err.hint).toContain(join(cwd, 'clouds.yaml'));
  });

  it('explains what to set when there are no credentials at all', () => {
    const err = caught(() => resolveCloudConfig({ env: { PATH: '/bin' }, cwd, home }));
    expect(err.message).toContain('no OpenStack credentials');
    expect(err.hint).toContain('OS_CLOUD');
  });
});

describe('OS_* variables', () => {
  it('reads password auth with the default domain, region and interface', () => {
    const config = resolveCloudConfig({
      env: {
        OS_AUTH_URL: 'http://127.0.0.1:5000',
        OS_USERNAME: 'farm',
        OS_PASSWORD: 'pw-123456',
        OS_PROJECT_NAME: 'farm',
        OS_REGION_NAME: 'RegionTwo',
        OS_INTERFACE: 'internalURL',
      },
      cwd,
      home,
    });
    expect(config.authUrl).toBe('http://127.0.0.1:5000/v3');
    expect(config.regionName).toBe('RegionTwo');
    expect(config.interface).toBe('internal');
    expect(config.auth).toEqual({
      type: 'password',
      username: 'farm',
      userId: undefined,
      userDomainName: undefined,
      userDomainId: 'default',
      password: 'pw-123456',
      projectName: 'farm',
      projectId: undefined,
      projectDomainName: undefined,
      projectDomainId: 'default',
    });
  });

  it('uses the named domains when given', () => {
    const config = resolveCloudConfig({
      env: {
        OS_AUTH_URL: 'https://k/v3/',
        OS_USERNAME: 'u',
        OS_PASSWORD: 'p',
        OS_PROJECT_ID: 'abc',
        OS_USER_DOMAIN_NAME: 'Users',
        OS_PROJECT_DOMAIN_NAME: 'Projects',
      },
      cwd,
      home,
    });
    expect(config.authUrl).toBe('https://k/v3');
    expect(config.auth).toMatchObject({ userDomainName: 'Users', userDomainId: undefined, projectId: 'abc', projectDomainName: 'Projects' });
  });

  it('recognises application credentials without OS_AUTH_TYPE', () => {
    const config = resolveCloudConfig({
      env: { OS_AUTH_URL: 'https://k:5000/v3', OS_APPLICATION_CREDENTIAL_ID: 'ac-id', OS_APPLICATION_CREDENTIAL_SECRET: 'ac-secret' },
      cwd,
      home,
    });
    expect(config.auth).toMatchObject({ type: 'application_credential', id: 'ac-id', secret: 'ac-secret' });
  });

  it('lists every missing field at once, in the variables the user sets', () => {
    const err = caught(() => resolveCloudConfig({ env: { OS_USERNAME: 'farm' }, cwd, home }));
    expect(err.message).toBe(
      'the OS_* variables lack OS_AUTH_URL, OS_PASSWORD, OS_PROJECT_NAME (or OS_PROJECT_ID)',
    );
    const appcred = caught(() => resolveCloudConfig({ env: { OS_AUTH_TYPE: 'v3applicationcredential', OS_AUTH_URL: 'https://k' }, cwd, home }));
    expect(appcred.message).toContain('OS_APPLICATION_CREDENTIAL_SECRET');
    expect(appcred.message).toContain('OS_APPLICATION_CREDENTIAL_ID (or OS_APPLICATION_CREDENTIAL_NAME with OS_USERNAME)');
  });
});

describe('clouds.yaml entries', () => {
  it('reads application credentials', () => {
    write(
      join(cwd, 'clouds.yaml'),
      cloud('ac', { auth_url: 'http://127.0.0.1:15000/v3', application_credential_id: 'id1', application_credential_secret: 'sec-ret-1' }, {
        auth_type: 'v3applicationcredential',
        region_name: 'RegionOne',
      }),
    );
    const config = resolveCloudConfig({ cloud: 'ac', env: {}, cwd, home });
    expect(config.auth).toMatchObject({ type: 'application_credential', id: 'id1', secret: 'sec-ret-1' });
    expect(config.regionName).toBe('RegionOne');
    expect(config.interface).toBe('public');
  });

  it('lists all missing fields in clouds.yaml terms', () => {
    write(join(cwd, 'clouds.yaml'), cloud('c', { username: 'farm' }));
    const err = caught(() => resolveCloudConfig({ cloud: 'c', env: {}, cwd, home }));
    expect(err.message).toMatch(/^cloud 'c' in .*clouds\.yaml lacks auth\.auth_url, auth\.password, auth\.project_name \(or auth\.project_id\)$/);
  });

  it('refuses unsupported auth types and Keystone v2', () => {
    write(join(cwd, 'clouds.yaml'), cloud('t', PW, { auth_type: 'v3oidcpassword' }), cloud('v2', { ...PW, auth_url: 'https://k:5000/v2.0' }));
    expect(caught(() => resolveCloudConfig({ cloud: 't', env: {}, cwd, home })).message).toContain("'v3oidcpassword'");
    expect(caught(() => resolveCloudConfig({ cloud: 'v2', env: {}, cwd, home })).message).toContain('Keystone v2 URL');
  });

  it('does not quote a broken file (it may hold a password)', () => {
    writeFileSync(join(cwd, 'clouds.yaml'), 'clouds:\n  c:\n    auth:\n      password: "unterminated-secret-xyz\n   bad: [\n');
    const err = caught(() => resolveCloudConfig({ cloud: 'c', env: {}, cwd, home }));
    expect(err.message).toContain('is not valid YAML');
    expect(err.message).not.toContain('unterminated-secret-xyz');
  });
});
