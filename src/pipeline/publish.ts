// publish_image (source.publish): each arch's built image goes from its worker to the registry as
// REPO:<build id>-<arch> (./build-arch.ts, while the image is still there), then the coordinator
// pushes one manifest list of the arches that did, tagged <build id> (and latest). A failed arch
// leaves the list out unless partial: true. A failed push leaves the arch's disks as they are:
// they are the build's result; the publication is recorded beside them, failure included.

import type { Arch } from '../core/arch.ts';
import { FarmError, errorMessage } from '../core/errors.ts';
import type { LoadedInventory } from '../inventory/schema.ts';
import { readCredentials } from '../registry/auth-file.ts';
import { authHint, RegistryClient, registryAnswer } from '../registry/client.ts';
import { childTag, publishRepo, pushIndex, readChild, repoName, type PublishSpec, type PushedChild } from '../registry/publish.ts';
import type { BuildRecord } from '../records/build-record.ts';
import type { ScopedReporter } from '../ui/reporter.ts';
import type { PreparedWorker } from '../../workers/builder.ts';
import type { PullAuth } from '../../workers/podman/pull.ts';

export interface Publish {
  spec: PublishSpec;
  repository: string;
  auth?: PullAuth | undefined;
  env: NodeJS.ProcessEnv;
}

/**
 * The build's publish settings, with the credentials the workers push with (or undefined). The
 * registry is asked once (GET /v2/ with them) before anything is built, so refused credentials or
 * an unreachable registry fail the build at its start, not after the disks are made.
 */
export async function publishFor(loaded: LoadedInventory, env: NodeJS.ProcessEnv, signal: AbortSignal): Promise<Publish | undefined> {
  const p = loaded.inventory.source.publish;
  if (!p) return undefined;
  const ref = publishRepo(p.image);
  const creds = await readCredentials(ref.registry, ref.repository, env);
  const client = new RegistryClient({ host: ref.apiHost, credentials: creds, tlsVerify: p.tls_verify, env });
  const r = await client.request('GET', '/v2/', [], signal);
  if (r.status !== 200) {
    throw new FarmError('REGISTRY', `source.publish.image ${p.image}: the registry answered ${registryAnswer(r)}`, { hint: authHint({ host: ref.registry, credentials: creds }) });
  }
  return {
    spec: { image: p.image, latest: p.latest, partial: p.partial, tls_verify: p.tls_verify },
    repository: repoName(ref),
    auth: creds ? { username: creds.username, password: creds.password, serveraddress: ref.registry } : undefined,
    env,
  };
}

/** Pushes one arch's image from a worker that built it; false (logged) when it could not. */
export async function publishArch(pub: Publish, arch: Arch, worker: PreparedWorker, store: BuildRecord, signal: AbortSignal, alog: ScopedReporter): Promise<boolean> {
  const ref = `${pub.repository}:${childTag(store.buildId, arch)}`;
  try {
    if (!worker.push) throw new Error('this builder cannot push images');
    await worker.push(ref, { auth: pub.auth, tlsVerify: pub.spec.tls_verify, signal });
    // The registry's own copy decides the digest, media type and size the list names.
    const child = await readChild(pub.spec, store.buildId, arch, pub.env, signal);
    await store.archPublished(pub.repository, arch, { ref, digest: child.digest });
    alog.info(`published ${ref} (${child.digest})`);
    return true;
  } catch (err) {
    alog.error(`publish_image: ${errorMessage(err)}`);
    return false;
  }
}

/** After every arch: the manifest list of the published arches, or the reason there is none. */
export async function publishList(pub: Publish, arches: readonly Arch[], store: BuildRecord, signal: AbortSignal, log: ScopedReporter): Promise<void> {
  const published = store.current.published?.arches ?? {};
  const done = arches.filter((a) => published[a]);
  const missing = arches.filter((a) => !published[a]);
  const buildTag = `${pub.repository}:${store.buildId}`;
  let error: string | undefined;
  if (done.length === 0) error = `no arch was published: no manifest list ${buildTag}`;
  else if (missing.length && !pub.spec.partial) error = `${missing.join(', ')} not published: no manifest list ${buildTag} (set source.publish.partial: true to push a list of the arches that were)`;
  if (error) {
    log.error(`publish_image: ${error}`);
    await store.listPublished(pub.repository, { error });
    return;
  }
  try {
    const children: PushedChild[] = [];
    for (const a of done) children.push(await readChild(pub.spec, store.buildId, a, pub.env, signal));
    const tags = [store.buildId, ...(pub.spec.latest ? ['latest'] : [])];
    const { digest, mediaType } = await pushIndex(pub.spec, tags, children, pub.env, signal);
    await store.listPublished(pub.repository, { list: { ref: buildTag, digest, mediaType, tags } });
    log.info(`published manifest list ${buildTag}@${digest} (${done.join(', ')}${missing.length ? `; partial: ${missing.join(', ')} left out` : ''}${pub.spec.latest ? '; tagged latest' : ''})`);
  } catch (err) {
    const msg = `manifest list ${buildTag} not pushed: ${errorMessage(err)}`;
    log.error(`publish_image: ${msg}`);
    await store.listPublished(pub.repository, { error: msg });
  }
}
