// The lab registry (scripts/lab.d/services/registry.sh) for integration tests: where it is, how to
// trust it and log in, and a small HTTPS client for its API that checks the lab CA.

import { execFile } from 'node:child_process';
import { request } from 'node:https';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { LAB_DIR, LAB_SCRIPT, labEnv } from './lab.ts';

const run = promisify(execFile);

/** The lab's arch names and the image (OCI) arch each one's image reports. */
export const OCI_ARCH = { x86_64: 'amd64', aarch64: 'arm64', ppc64le: 'ppc64le', s390x: 's390x' } as const;
export type LabArch = keyof typeof OCI_ARCH;
export const LAB_ARCHES = Object.keys(OCI_ARCH) as LabArch[];

/** The lab registry's user (its random password is in the lab's secrets, 0600). */
export const LAB_REGISTRY_USER = 'farm-lab';

export interface LabRegistry {
  /** host:port */
  host: string;
  /** PEM file of the lab CA. */
  ca: string;
  /** A --cert-dir for skopeo and podman: holds ca.crt. */
  certDir: string;
  /** A containers auth.json with the lab user's credentials. */
  authFile: string;
  /** The seeded four-arch list, REG/farm-lab/base:latest. */
  image: string;
}

/** The registry as `scripts/lab env` exports it. */
export async function labRegistry(): Promise<LabRegistry> {
  const env = await labEnv();
  const need = (k: string) => {
    const v = env[k];
    if (!v) throw new Error(`scripts/lab env does not export ${k}: is the registry part up?`);
    return v;
  };
  return {
    host: need('FARM_LAB_REGISTRY'),
    ca: need('FARM_LAB_REGISTRY_CA'),
    certDir: need('FARM_LAB_REGISTRY_CERT_DIR'),
    authFile: need('REGISTRY_AUTH_FILE'),
    image: need('FARM_LAB_REGISTRY_IMAGE'),
  };
}

/** The lab user's password, from the lab's secrets (tests of refusals and of leaks need it). */
export async function labRegistryPassword(): Promise<string> {
  return (await readFile(join(LAB_DIR, 'registry', 'secrets', 'password'), 'utf8')).trim();
}

export interface RegistryAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One request to the registry's API over TLS checked against `ca` (no CA: the system's). */
export function registryRequest(
  reg: Pick<LabRegistry, 'host'>,
  path: string,
  opts: { ca?: Buffer; user?: string; password?: string; method?: string; accept?: string[] } = {},
): Promise<RegistryAnswer> {
  const [hostname, port] = reg.host.split(':');
  const headers: Record<string, string> = {};
  if (opts.user !== undefined) headers.authorization = `Basic ${Buffer.from(`${opts.user}:${opts.password ?? ''}`).toString('base64')}`;
  if (opts.accept) headers.accept = opts.accept.join(', ');
  return new Promise((resolve, reject) => {
    const req = request(
      { hostname, port: Number(port), path, method: opts.method ?? 'GET', ca: opts.ca, headers, timeout: 10_000, agent: false },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer from https://${reg.host}${path} in 10 s`)));
    req.on('error', reject);
    req.end();
  });
}

/** Media types a client that takes lists asks for. */
export const MANIFEST_ACCEPT = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
];

/** The digest REPO:TAG names in the registry (HEAD as the lab user, as a poller asks), or undefined. */
export async function tagDigest(reg: LabRegistry, repoTag: string): Promise<string | undefined> {
  const i = repoTag.lastIndexOf(':');
  const r = await registryRequest(reg, `/v2/${repoTag.slice(0, i)}/manifests/${repoTag.slice(i + 1)}`, {
    ca: await readFile(reg.ca),
    user: LAB_REGISTRY_USER,
    password: await labRegistryPassword(),
    method: 'HEAD',
    accept: MANIFEST_ACCEPT,
  });
  return r.status === 200 ? (r.headers['docker-content-digest'] as string) : undefined;
}

/** Pushes a new list of the lab base as REPO:TAG (`scripts/lab registry push-new-list`); its digest. */
export async function pushNewList(repoTag: string, opts: { id?: string; arches?: LabArch[] } = {}): Promise<string> {
  const args = ['registry', 'push-new-list', repoTag];
  if (opts.id) args.push('--id', opts.id);
  if (opts.arches) args.push('--arches', opts.arches.join(','));
  const { stdout } = await run(LAB_SCRIPT, args, { timeout: 120_000 });
  return stdout.trim();
}
