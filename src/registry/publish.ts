// publish_image: the coordinator's half. Each arch's image was pushed from its worker under a
// per-arch tag (`<build id>-<arch>`: podman push needs a destination name, and a tagged child
// stays reachable and garbage-collection safe in the registry); here each child's manifest is
// read back (digest, media type, size as the registry holds them), and one manifest list naming
// all of them, with their platforms, is PUT under the build id and, if asked, `latest`.

import { ARCHES, type Arch } from '../core/arch.ts';
import { FarmError, errorMessage } from '../core/errors.ts';
import { readCredentials, type RegistryCredentials } from './auth-file.ts';
import { authHint, MANIFEST_TYPES, RegistryClient, registryAnswer } from './client.ts';
import { ARCH_TO_OCI, digestOf } from './manifest-list.ts';
import { parseImageRef, type ImageRef } from './ref.ts';

export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const DOCKER_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
export const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';

export interface PublishSpec {
  image: string;
  latest: boolean;
  partial: boolean;
  tls_verify: boolean;
}

export interface PushedChild {
  arch: Arch;
  digest: string;
  mediaType: string;
  size: number;
}

/** REF must name a repository only: the farm chooses the tags. */
export function publishRepo(image: string): ImageRef {
  let ref: ImageRef;
  try {
    ref = parseImageRef(image);
  } catch (err) {
    throw new FarmError('INVENTORY', `source.publish.image ${errorMessage(err)}`, { hint: 'use REGISTRY/REPOSITORY, e.g. quay.io/me/my-os' });
  }
  const last = image.split('/').pop() ?? '';
  if (image.includes('@') || last.includes(':')) {
    throw new FarmError('INVENTORY', `source.publish.image '${image}' names a tag or digest`, { hint: `give the repository only (${ref.registry}/${ref.repository}): the list is tagged with the build id (and latest), each arch with <build id>-<arch>` });
  }
  return ref;
}

export const childTag = (buildId: string, arch: Arch): string => `${buildId}-${arch}`;
export const repoName = (ref: ImageRef): string => `${ref.registry}/${ref.repository}`;

/**
 * The manifest list naming `children`: an OCI image index for OCI manifests, a Docker manifest
 * list for Docker schema 2 ones (a list's children must be of its own family); mixed families are
 * refused. Entries in arch order, so the same children give the same document and digest.
 */
export function indexDocument(children: readonly PushedChild[]): { mediaType: string; body: Buffer } {
  if (children.length === 0) throw new FarmError('REGISTRY', 'no arch image to list');
  const types = new Set(children.map((c) => c.mediaType));
  const mediaType = types.size === 1 && types.has(OCI_MANIFEST) ? OCI_INDEX : types.size === 1 && types.has(DOCKER_MANIFEST) ? DOCKER_LIST : undefined;
  if (!mediaType) throw new FarmError('REGISTRY', `the arch images are of media types ${[...types].join(', ')}: one list takes either OCI or Docker schema 2 manifests, not both`, { hint: 'push every arch in one format (podman push --format oci)' });
  const sorted = [...children].sort((a, b) => ARCHES.indexOf(a.arch) - ARCHES.indexOf(b.arch));
  const doc = {
    schemaVersion: 2,
    mediaType,
    manifests: sorted.map((c) => ({
      mediaType: c.mediaType,
      digest: c.digest,
      size: c.size,
      platform: { architecture: ARCH_TO_OCI[c.arch], os: 'linux', ...(c.arch === 'aarch64' ? { variant: 'v8' } : {}) },
    })),
  };
  return { mediaType, body: Buffer.from(JSON.stringify(doc)) };
}

export async function publishClient(spec: PublishSpec, env: NodeJS.ProcessEnv): Promise<{ ref: ImageRef; client: RegistryClient; credentials?: RegistryCredentials | undefined }> {
  const ref = publishRepo(spec.image);
  const credentials = await readCredentials(ref.registry, ref.repository, env);
  return { ref, credentials, client: new RegistryClient({ host: ref.apiHost, credentials, tlsVerify: spec.tls_verify, env }) };
}

/** A child as the registry holds it, read by its per-arch tag. */
export async function readChild(spec: PublishSpec, buildId: string, arch: Arch, env: NodeJS.ProcessEnv, signal: AbortSignal): Promise<PushedChild> {
  const { ref, client, credentials } = await publishClient(spec, env);
  const r = await client.request('GET', `/v2/${ref.repository}/manifests/${childTag(buildId, arch)}`, MANIFEST_TYPES, signal);
  if (r.status !== 200) throw new FarmError('REGISTRY', `${repoName(ref)}:${childTag(buildId, arch)}: the registry answered ${registryAnswer(r)}`, { hint: authHint({ host: ref.registry, credentials }) });
  const json = JSON.parse(r.body.toString('utf8')) as { mediaType?: string };
  const mediaType = json.mediaType ?? String(r.headers['content-type'] ?? '').split(';')[0]!;
  return { arch, digest: digestOf(r.body), mediaType, size: r.body.length };
}

/** PUTs the list under every tag; its digest (the same document under each). */
export async function pushIndex(spec: PublishSpec, tags: readonly string[], children: readonly PushedChild[], env: NodeJS.ProcessEnv, signal: AbortSignal): Promise<{ digest: string; mediaType: string }> {
  const { ref, client, credentials } = await publishClient(spec, env);
  const doc = indexDocument(children);
  const digest = digestOf(doc.body);
  for (const tag of tags) {
    const r = await client.request('PUT', `/v2/${ref.repository}/manifests/${tag}`, [], signal, { body: doc.body, contentType: doc.mediaType });
    if (r.status !== 201 && r.status !== 200) {
      throw new FarmError('REGISTRY', `cannot push the manifest list ${repoName(ref)}:${tag}: the registry answered ${registryAnswer(r)}`, { hint: r.status === 401 || r.status === 403 ? authHint({ host: ref.registry, credentials }) : 'check the registry accepts manifest lists' });
    }
    const answered = r.headers['docker-content-digest'];
    if (typeof answered === 'string' && answered !== digest) throw new FarmError('REGISTRY', `${repoName(ref)}:${tag}: the registry stored digest ${answered}, not ${digest}`);
  }
  return { digest, mediaType: doc.mediaType };
}
