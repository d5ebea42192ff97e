// The image source read at the start of a build: the manifest list REF names (once), each arch's
// manifest digest in it, and the credentials the workers pull with. A single-arch manifest is a
// list of one arch (its config says which).

import type { Arch } from '../core/arch.ts';
import { FarmError, errorMessage } from '../core/errors.ts';
import { readCredentials, type RegistryCredentials } from './auth-file.ts';
import { authHint, LIST_TYPES, MANIFEST_TYPES, RegistryClient, registryAnswer, type RegistryAnswer } from './client.ts';
import { digestOf, OCI_TO_ARCH, parseManifest } from './manifest-list.ts';
import { parseImageRef, pinned, reference, type ImageRef } from './ref.ts';

export interface ImageSourceSpec {
  image: string;
  tls_verify: boolean;
}

export interface ResolvedImage {
  /** REF as the inventory writes it. */
  image: string;
  ref: ImageRef;
  /** Digest of what REF names (the list, or the one manifest). */
  digest: string;
  /** Each arch the list carries: its manifest digest. */
  arches: Partial<Record<Arch, string>>;
  tlsVerify: boolean;
  credentials?: RegistryCredentials | undefined;
}

const ACCEPT = [...LIST_TYPES, ...MANIFEST_TYPES];

export async function clientFor(spec: ImageSourceSpec, env: NodeJS.ProcessEnv): Promise<{ ref: ImageRef; client: RegistryClient; credentials?: RegistryCredentials | undefined }> {
  let ref: ImageRef;
  try {
    ref = parseImageRef(spec.image);
  } catch (err) {
    throw new FarmError('INVENTORY', `source.image ${errorMessage(err)}`, { hint: 'use REGISTRY/REPOSITORY:TAG or REGISTRY/REPOSITORY@sha256:DIGEST' });
  }
  const credentials = await readCredentials(ref.registry, ref.repository, env);
  return { ref, credentials, client: new RegistryClient({ host: ref.apiHost, credentials, tlsVerify: spec.tls_verify, env }) };
}

function refused(spec: ImageSourceSpec, ref: ImageRef, r: RegistryAnswer, credentials: RegistryCredentials | undefined): FarmError {
  const what = `${spec.image}: the registry answered ${registryAnswer(r)}`;
  if (r.status === 401 || r.status === 403) return new FarmError('REGISTRY', what, { hint: authHint({ host: ref.registry, credentials }) });
  if (r.status === 404) return new FarmError('REGISTRY', what, { hint: `check the repository and ${ref.digest ? 'digest' : 'tag'} (skopeo inspect docker://${spec.image})` });
  return new FarmError('REGISTRY', what);
}

/** HEAD of REF: the digest it names now (what `farm serve` polls; HEADs are not rate-counted). */
export async function headDigest(spec: ImageSourceSpec, env: NodeJS.ProcessEnv, signal: AbortSignal): Promise<string> {
  const { ref, client, credentials } = await clientFor(spec, env);
  const r = await client.request('HEAD', `/v2/${ref.repository}/manifests/${reference(ref)}`, ACCEPT, signal);
  if (r.status !== 200) throw refused(spec, ref, r, credentials);
  const digest = r.headers['docker-content-digest'];
  if (typeof digest === 'string' && /^sha256:[0-9a-f]{64}$/.test(digest)) return digest;
  if (ref.digest) return ref.digest;
  throw new FarmError('REGISTRY', `${spec.image}: the registry's answer carries no Docker-Content-Digest`);
}

/** GET of REF's manifest list, once: its digest and every arch's manifest digest. */
export async function resolveImage(spec: ImageSourceSpec, env: NodeJS.ProcessEnv, signal: AbortSignal): Promise<ResolvedImage> {
  const { ref, client, credentials } = await clientFor(spec, env);
  const r = await client.request('GET', `/v2/${ref.repository}/manifests/${reference(ref)}`, ACCEPT, signal);
  if (r.status !== 200) throw refused(spec, ref, r, credentials);
  const digest = digestOf(r.body);
  if (ref.digest && ref.digest !== digest) throw new FarmError('REGISTRY', `${spec.image}: the registry's manifest has digest ${digest}, not the one asked for`);
  let parsed;
  try {
    parsed = parseManifest(r.body, r.headers['content-type'] as string | undefined);
  } catch (err) {
    throw new FarmError('REGISTRY', `${spec.image}: ${errorMessage(err)}`);
  }
  const arches: Partial<Record<Arch, string>> = {};
  if (parsed.kind === 'list') {
    for (const e of parsed.entries) arches[e.arch] = e.digest;
  } else {
    const c = await client.request('GET', `/v2/${ref.repository}/blobs/${parsed.configDigest}`, ['application/json', '*/*'], signal);
    if (c.status !== 200) throw refused(spec, ref, c, credentials);
    const arch = OCI_TO_ARCH[String((JSON.parse(c.body.toString('utf8')) as { architecture?: unknown }).architecture)];
    if (arch) arches[arch] = digest;
  }
  return { image: spec.image, ref, digest, arches, tlsVerify: spec.tls_verify, credentials };
}

/** Refuses arches the list does not carry, naming the ones it does. */
export function checkArches(resolved: ResolvedImage, wanted: readonly Arch[]): void {
  const missing = wanted.filter((a) => !resolved.arches[a]);
  if (missing.length === 0) return;
  const carried = Object.keys(resolved.arches);
  throw new FarmError('REGISTRY', `${resolved.image} (${resolved.digest.slice(0, 19)}) carries no image for ${missing.join(', ')}: it carries ${carried.length ? carried.join(', ') : 'no linux arch the farm builds'}`, {
    hint: `build only the arches it carries (--arch ${carried.join(',') || '...'}), or push a list with ${missing.join(', ')}`,
  });
}

/** What a worker of `arch` pulls: the repository by that arch's digest. */
export function pullRefFor(resolved: ResolvedImage, arch: Arch): string {
  const d = resolved.arches[arch];
  if (!d) throw new FarmError('REGISTRY', `${resolved.image} carries no image for ${arch}`);
  return pinned(resolved.ref, d);
}
