// Where OpenStack users keep their credentials, read the way openstacksdk and the `openstack` CLI
// read them: a clouds.yaml entry (plus secure.yaml) chosen by name, or the OS_* variables.
// Only Keystone v3 password and application-credential auth are supported; anything else is a
// clear error rather than a guess.

import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { FarmError, errorMessage } from '../../src/core/errors.ts';

export type Interface = 'public' | 'internal' | 'admin';

export interface PasswordAuth {
  type: 'password';
  username?: string;
  userId?: string;
  userDomainName?: string;
  userDomainId?: string;
  password: string;
  projectName?: string;
  projectId?: string;
  projectDomainName?: string;
  projectDomainId?: string;
}

export interface AppCredentialAuth {
  type: 'application_credential';
  id?: string;
  name?: string;
  secret: string;
  /** Only needed when the credential is named instead of given by id. */
  username?: string;
  userId?: string;
  userDomainName?: string;
  userDomainId?: string;
}

export interface CloudConfig {
  /** The clouds.yaml entry, or "envvars" for OS_* variables (openstacksdk's name for them). */
  cloud: string;
  /** Where the settings came from, for messages: a file path or "OS_* variables". */
  source: string;
  /** Keystone v3 base URL, ending in /v3. */
  authUrl: string;
  auth: PasswordAuth | AppCredentialAuth;
  regionName?: string;
  interface: Interface;
  /** image_endpoint_override: use this Glance URL instead of the catalog's. */
  imageEndpointOverride?: string;
}

export interface ResolveOptions {
  /** The target's `cloud`; falls back to OS_CLOUD. */
  cloud?: string;
  env: NodeJS.ProcessEnv;
  cwd?: string;
  home?: string;
}

/** The secret values in a config, for redaction. */
export function configSecrets(config: CloudConfig): string[] {
  return config.auth.type === 'password' ? [config.auth.password] : [config.auth.secret];
}

/** Who is authenticating, for messages: "user farm", "application credential 1234". */
export function principal(config: CloudConfig): string {
  const a = config.auth;
  if (a.type === 'password') return `user ${a.username ?? a.userId}`;
  return a.id ? `application credential ${a.id}` : `application credential ${a.name} of user ${a.username ?? a.userId}`;
}

/** "cloud 'lab'" or "the OS_* variables". */
export function cloudLabel(config: Pick<CloudConfig, 'cloud'>): string {
  return config.cloud === ENVVARS ? 'the OS_* variables' : `cloud '${config.cloud}'`;
}

const ENVVARS = 'envvars';
const SUFFIXES = ['.yaml', '.yml', '.json'];

/** clouds.yaml (or secure.yaml) locations in openstacksdk's order; the first that exists wins. */
export function configCandidates(
  base: 'clouds' | 'secure',
  opts: Pick<ResolveOptions, 'env' | 'cwd' | 'home'>,
): string[] {
  const home = opts.home ?? homedir();
  const userDir = opts.env.XDG_CONFIG_HOME ? join(opts.env.XDG_CONFIG_HOME, 'openstack') : join(home, '.config', 'openstack');
  const dirs = [opts.cwd ?? process.cwd(), userDir, join(home, '.config', 'openstack'), '/etc/openstack'];
  const files = [...new Set(dirs)].flatMap((d) => SUFFIXES.map((s) => join(d, base + s)));
  const explicit = base === 'clouds' ? opts.env.OS_CLIENT_CONFIG_FILE : opts.env.OS_CLIENT_SECURE_FILE;
  return explicit ? [resolve(opts.cwd ?? process.cwd(), explicit), ...files] : files;
}

type Dict = Record<string, unknown>;

function isDict(v: unknown): v is Dict {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** secure.yaml's values win over clouds.yaml's, key by key (openstacksdk merges the same way). */
function deepMerge(base: Dict, over: Dict): Dict {
  const out: Dict = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const cur = out[k];
    out[k] = isDict(cur) && isDict(v) ? deepMerge(cur, v) : v;
  }
  return out;
}

function readConfigFile(file: string): Dict {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new FarmError('UPLOAD', `cannot read ${file}: ${errorMessage(err)}`);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    // The YAML parser quotes the offending line, which may hold a password: say where, not what.
    const line = (err as { linePos?: { line: number }[] }).linePos?.[0]?.line;
    throw new FarmError('UPLOAD', `${file} is not valid YAML${line ? ` (line ${line})` : ''}`, {
      hint: 'Fix the file; `openstack --os-cloud NAME token issue` reads it the same way.',
    });
  }
  if (doc == null) return {};
  if (!isDict(doc)) throw new FarmError('UPLOAD', `${file} is not a mapping with a "clouds:" key`);
  return doc;
}

function str(v: unknown): string | undefined {
  if (typeof v === 'number') return String(v);
  return typeof v === 'string' && v.trim() !== '' ? v.trim() : undefined;
}

/** The settings of one cloud, in clouds.yaml vocabulary, plus how to name each field in messages. */
interface RawCloud {
  values: Record<string, string | undefined>;
  /** Field key → how the user spells it in this source ("auth.password", "OS_PASSWORD"). */
  spell: (key: string) => string;
  source: string;
  cloud: string;
}

const AUTH_KEYS = [
  'auth_url',
  'username',
  'user_id',
  'password',
  'project_name',
  'project_id',
  'tenant_name',
  'tenant_id',
  'user_domain_name',
  'user_domain_id',
  'project_domain_name',
  'project_domain_id',
  'domain_name',
  'domain_id',
  'default_domain',
  'application_credential_id',
  'application_credential_name',
  'application_credential_secret',
] as const;

const TOP_KEYS = ['auth_type', 'region_name', 'interface', 'endpoint_type', 'image_endpoint_override', 'default_domain'] as const;

function fromCloudsYaml(name: string, selectedBy: string, opts: ResolveOptions): RawCloud {
  const candidates = configCandidates('clouds', opts);
  const explicit = opts.env.OS_CLIENT_CONFIG_FILE;
  if (explicit && !existsSync(candidates[0]!)) {
    throw new FarmError('UPLOAD', `OS_CLIENT_CONFIG_FILE names ${candidates[0]}, which does not exist`, {
      hint: 'Point OS_CLIENT_CONFIG_FILE at your clouds.yaml, or unset it to use the usual locations.',
    });
  }
  const file = candidates.find((f) => existsSync(f));
  if (!file) {
    throw new FarmError('UPLOAD', `cloud '${name}' (${selectedBy}) is not defined: no clouds.yaml found`, {
      hint: `Looked in ${candidates.filter((f) => f.endsWith('.yaml')).join(', ')}. Create one there or set OS_CLIENT_CONFIG_FILE.`,
    });
  }
  let doc = readConfigFile(file);
  const secureFile = configCandidates('secure', opts).find((f) => existsSync(f));
  if (secureFile) doc = deepMerge(doc, readConfigFile(secureFile));
  const clouds = isDict(doc.clouds) ? doc.clouds : {};
  const entry = clouds[name];
  if (!isDict(entry)) {
    const known = Object.keys(clouds);
    throw new FarmError('UPLOAD', `cloud '${name}' (${selectedBy}) is not in ${file}`, {
      hint: known.length ? `Clouds defined there: ${known.join(', ')}.` : 'That file defines no clouds under "clouds:".',
    });
  }
  if (entry.profile !== undefined || entry.cloud !== undefined) {
    throw new FarmError('UPLOAD', `cloud '${name}' in ${file} uses a vendor profile, which farm does not read`, {
      hint: 'Write auth_url, region_name and interface into the entry itself.',
    });
  }
  const auth = isDict(entry.auth) ? entry.auth : {};
  const values: Record<string, string | undefined> = {};
  for (const k of AUTH_KEYS) values[k] = str(auth[k]);
  for (const k of TOP_KEYS) values[k] = str(entry[k]) ?? values[k];
  return {
    values,
    spell: (k) => ((AUTH_KEYS as readonly string[]).includes(k) ? `auth.${k}` : k),
    source: secureFile ? `${file} (+ ${secureFile})` : file,
    cloud: name,
  };
}

/** OS_* variable for each clouds.yaml key. */
const ENV_NAMES: Record<string, string> = {
  auth_type: 'OS_AUTH_TYPE',
  region_name: 'OS_REGION_NAME',
  interface: 'OS_INTERFACE',
  endpoint_type: 'OS_ENDPOINT_TYPE',
  image_endpoint_override: 'OS_IMAGE_ENDPOINT_OVERRIDE',
  default_domain: 'OS_DEFAULT_DOMAIN',
};
for (const k of AUTH_KEYS) ENV_NAMES[k] ??= `OS_${k.toUpperCase()}`;

function fromEnv(env: NodeJS.ProcessEnv): RawCloud | undefined {
  const values: Record<string, string | undefined> = {};
  let any = false;
  for (const [k, v] of Object.entries(ENV_NAMES)) {
    values[k] = str(env[v]);
    if (values[k] !== undefined && (AUTH_KEYS as readonly string[]).includes(k)) any = true;
  }
  if (!any) return undefined;
  return { values, spell: (k) => ENV_NAMES[k] ?? k, source: 'OS_* variables', cloud: ENVVARS };
}

function normalizeAuthUrl(url: string, raw: RawCloud): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new FarmError('UPLOAD', `${raw.spell('auth_url')} in ${raw.source} is not a URL`, {
      hint: 'It is Keystone\'s address, e.g. https://keystone.example.org:5000/v3.',
    });
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    throw new FarmError('UPLOAD', `${raw.spell('auth_url')} in ${raw.source} must be an http(s) URL`);
  }
  const path = u.pathname.replace(/\/+$/, '');
  if (/\/v2(\.0)?$/.test(path)) {
    throw new FarmError('UPLOAD', `${raw.spell('auth_url')} in ${raw.source} is a Keystone v2 URL; farm speaks v3 only`, {
      hint: 'Use the same address ending in /v3.',
    });
  }
  u.pathname = /\/v3$/.test(path) ? path : `${path}/v3`;
  u.search = '';
  u.hash = '';
  return u.toString();
}

function normalizeInterface(v: string | undefined, raw: RawCloud): Interface {
  const i = (v ?? 'public').replace(/URL$/, '');
  if (i === 'public' || i === 'internal' || i === 'admin') return i;
  throw new FarmError('UPLOAD', `${raw.spell('interface')} in ${raw.source} is '${v}'; use public, internal or admin`);
}

function build(raw: RawCloud): CloudConfig {
  const v = raw.values;
  const authType = (v.auth_type ?? (v.application_credential_secret ? 'v3applicationcredential' : 'password')).toLowerCase();
  const isAppCred = authType === 'v3applicationcredential' || authType === 'applicationcredential';
  if (!isAppCred && authType !== 'password' && authType !== 'v3password') {
    throw new FarmError('UPLOAD', `${raw.spell('auth_type')} '${v.auth_type}' in ${raw.source} is not supported`, {
      hint: 'farm authenticates with Keystone v3 passwords (auth_type password) or application credentials (v3applicationcredential).',
    });
  }
  // Like `openstack --os-default-domain`: names without a domain are looked up in "default".
  const defaultDomainId = v.default_domain ?? 'default';
  const userDomainName = v.user_domain_name ?? v.domain_name;
  const userDomainId = v.user_domain_id ?? v.domain_id ?? (userDomainName ? undefined : defaultDomainId);
  const missing: string[] = [];
  if (!v.auth_url) missing.push(raw.spell('auth_url'));

  let auth: PasswordAuth | AppCredentialAuth;
  if (isAppCred) {
    if (!v.application_credential_secret) missing.push(raw.spell('application_credential_secret'));
    if (!v.application_credential_id) {
      if (!v.application_credential_name) {
        missing.push(`${raw.spell('application_credential_id')} (or ${raw.spell('application_credential_name')} with ${raw.spell('username')})`);
      } else if (!v.username && !v.user_id) {
        missing.push(`${raw.spell('username')} or ${raw.spell('user_id')} (a named application credential needs its user)`);
      }
    }
    auth = {
      type: 'application_credential',
      id: v.application_credential_id,
      name: v.application_credential_name,
      secret: v.application_credential_secret ?? '',
      username: v.username,
      userId: v.user_id,
      userDomainName,
      userDomainId,
    };
  } else {
    const projectName = v.project_name ?? v.tenant_name;
    const projectId = v.project_id ?? v.tenant_id;
    const projectDomainName = v.project_domain_name ?? v.domain_name;
    if (!v.username && !v.user_id) missing.push(`${raw.spell('username')} (or ${raw.spell('user_id')})`);
    if (!v.password) missing.push(raw.spell('password'));
    if (!projectName && !projectId) missing.push(`${raw.spell('project_name')} (or ${raw.spell('project_id')})`);
    auth = {
      type: 'password',
      username: v.username,
      userId: v.user_id,
      userDomainName,
      userDomainId,
      password: v.password ?? '',
      projectName,
      projectId,
      projectDomainName,
      projectDomainId: v.project_domain_id ?? v.domain_id ?? (projectDomainName ? undefined : defaultDomainId),
    };
  }
  if (missing.length) {
    const what = raw.cloud === ENVVARS ? 'the OS_* variables' : `cloud '${raw.cloud}' in ${raw.source}`;
    throw new FarmError('UPLOAD', `${what} lack${raw.cloud === ENVVARS ? '' : 's'} ${missing.join(', ')}`, {
      hint: isAppCred
        ? 'An application credential needs auth_url, application_credential_id and application_credential_secret.'
        : 'Password auth needs auth_url, username, password and a project (project_name or project_id).',
    });
  }
  return {
    cloud: raw.cloud,
    source: raw.source,
    authUrl: normalizeAuthUrl(v.auth_url!, raw),
    auth,
    regionName: v.region_name,
    interface: normalizeInterface(v.interface ?? v.endpoint_type, raw),
    imageEndpointOverride: v.image_endpoint_override,
  };
}

/**
 * The credentials to use: the clouds.yaml entry named by `opts.cloud` (the target's `cloud`) or
 * OS_CLOUD, else the OS_* variables. A named cloud takes nothing from OS_* auth variables,
 * as with openstacksdk.
 */
export function resolveCloudConfig(opts: ResolveOptions): CloudConfig {
  const fromTarget = str(opts.cloud);
  const name = fromTarget ?? str(opts.env.OS_CLOUD);
  if (name) {
    return build(fromCloudsYaml(name, fromTarget ? 'the target\'s "cloud"' : 'OS_CLOUD', opts));
  }
  const raw = fromEnv(opts.env);
  if (!raw) {
    throw new FarmError('UPLOAD', 'no OpenStack credentials: no cloud is selected and no OS_* variables are set', {
      hint: 'Set "cloud" on the openstack target (or OS_CLOUD) to a clouds.yaml entry, or export OS_AUTH_URL, OS_USERNAME, OS_PASSWORD, OS_PROJECT_NAME, ... (an openrc file).',
    });
  }
  return build(raw);
}
