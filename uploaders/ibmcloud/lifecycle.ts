// The IBM Cloud VPC image lifecycle: the farm's images found in each region by their user tags
// (Global Tagging: farm-build-id:<id>, farm-inventory:<naming>, ...), with any COS staging object
// a killed upload left (found by its metadata); removed (image, then its object), marked
// (channel and current tags; custom images stay private: VPC shares them through catalogs, not
// visibility) and deprecated (a tag).

import { HeadObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import type { Channel, FarmIdentity, ImageLifecycle, ReleaseChange, RemoteImage } from '../lifecycle.ts';
import type { PollSettings } from '../../src/core/poll.ts';
import { deleteObject } from './cos.ts';
import { objectKey } from './endpoints.ts';
import { removeImage } from './images.ts';
import type { IbmCloudTarget } from './schema.ts';
import type { Session } from './session.ts';

const KEYS = { buildId: 'farm-build-id', arch: 'farm-arch', name: 'farm-name', channel: 'farm-channel', inventory: 'farm-inventory', current: 'farm-current', permanent: 'farm-permanent', deprecated: 'farm-deprecated-at' } as const;

/** The identity as user tags, `key:value` (IBM keeps tags lowercase). */
export function identityUserTags(id: FarmIdentity): string[] {
  return [`${KEYS.buildId}:${id.buildId}`, `${KEYS.arch}:${id.arch}`, `${KEYS.name}:${id.name}`, `${KEYS.channel}:${id.channel}`, `${KEYS.inventory}:${id.inventory}`].map((t) => t.toLowerCase());
}

function parse(tags: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const t of tags) {
    const i = t.indexOf(':');
    if (i > 0) out[t.slice(0, i)] = t.slice(i + 1);
  }
  return out;
}

export interface IbmLifecycleAccess {
  session: () => Session;
  resourceGroupId: () => Promise<string>;
  regions: string[];
  target: IbmCloudTarget;
  name: string;
  deletePoll: PollSettings;
}

export async function ibmListImages(a: IbmLifecycleAccess, inventory: string, signal: AbortSignal): Promise<RemoteImage[]> {
  const s = a.session();
  const rg = await a.resourceGroupId();
  const want = inventory.toLowerCase();
  const out: RemoteImage[] = [];
  for (const region of a.regions) {
    for (const img of await s.vpc(region).listImages(rg, signal)) {
      const t = parse(await s.tagging.tagsOf(img.crn, signal));
      if (t[KEYS.inventory] !== want || !t[KEYS.buildId]) continue;
      out.push({
        target: a.name,
        kind: 'ibmcloud',
        location: region,
        imageId: img.id,
        imageName: img.name,
        buildId: t[KEYS.buildId]!,
        arch: t[KEYS.arch] ?? '',
        channel: (t[KEYS.channel] === 'released' ? 'released' : 'candidate') as Channel,
        current: t[KEYS.current] === 'true',
        permanent: t[KEYS.permanent] === 'true',
        createdAt: img.created_at,
        ...(t[KEYS.deprecated] ? { deprecatedAt: t[KEYS.deprecated] } : {}),
        parts: [img.crn],
      });
    }
  }
  // Staging objects are deleted after every upload: one still there is a killed upload's.
  const bucket = a.target.cos.bucket;
  const listed = await s.cos.send(new ListObjectsV2Command({ Bucket: bucket, MaxKeys: 1000 }), { abortSignal: signal });
  for (const o of listed.Contents ?? []) {
    if (!o.Key?.endsWith('.qcow2')) continue;
    const head = await s.cos.send(new HeadObjectCommand({ Bucket: bucket, Key: o.Key }), { abortSignal: signal }).catch(() => undefined);
    const m = head?.Metadata ?? {};
    if ((m['farm-inventory'] ?? '').toLowerCase() !== want || !m['farm-build-id']) continue;
    out.push({
      target: a.name,
      kind: 'ibmcloud',
      location: `cos://${a.target.cos.region}/${bucket}`,
      imageId: o.Key,
      imageName: m['farm-name'] ?? o.Key,
      buildId: m['farm-build-id'],
      arch: m['farm-arch'] ?? '',
      channel: 'candidate',
      current: false,
      permanent: false,
      ...(o.LastModified ? { createdAt: o.LastModified.toISOString() } : {}),
      parts: [],
      leftover: true,
    });
  }
  return out;
}

export async function ibmRemove(a: IbmLifecycleAccess, image: RemoteImage, signal: AbortSignal): Promise<string[]> {
  const s = a.session();
  const bucket = a.target.cos.bucket;
  if (image.leftover) {
    await deleteObject(s.cos, bucket, image.imageId, signal);
    return [`COS object ${bucket}/${image.imageId}`];
  }
  await removeImage(s.vpc(image.location), image.imageId, a.deletePoll, signal);
  const removed = [`VPC image ${image.location}:${image.imageId}`];
  // The object one upload stages serves every region; it normally went after the import.
  const key = objectKey(image.imageName);
  const there = await s.cos.send(new HeadObjectCommand({ Bucket: bucket, Key: key }), { abortSignal: signal }).then(
    () => true,
    () => false,
  );
  if (there) {
    await deleteObject(s.cos, bucket, key, signal);
    removed.push(`COS object ${bucket}/${key}`);
  }
  return removed;
}

export async function ibmMark(a: IbmLifecycleAccess, image: RemoteImage, change: ReleaseChange, signal: AbortSignal): Promise<void> {
  if (image.leftover) return;
  const tagging = a.session().tagging;
  const crn = image.parts[0]!;
  const other: Channel = change.channel === 'released' ? 'candidate' : 'released';
  await tagging.detach(crn, [`${KEYS.channel}:${other}`, ...(change.current ? [] : [`${KEYS.current}:true`])], signal);
  await tagging.attach(crn, [`${KEYS.channel}:${change.channel}`, ...(change.current ? [`${KEYS.current}:true`] : [])], signal);
}

export async function ibmDeprecate(a: IbmLifecycleAccess, image: RemoteImage, at: Date, signal: AbortSignal): Promise<void> {
  if (image.leftover) return;
  await a.session().tagging.attach(image.parts[0]!, [`${KEYS.deprecated}:${at.toISOString().toLowerCase()}`], signal);
}

/** The four operations, each step's failure naming the target. */
export function ibmLifecycle(a: IbmLifecycleAccess): ImageLifecycle {
  return {
    listImages: (inventory, signal) => ibmListImages(a, inventory, signal),
    removeImage: (image, signal) => ibmRemove(a, image, signal),
    markImage: (image, change, signal) => ibmMark(a, image, change, signal),
    deprecateImage: (image, at, signal) => ibmDeprecate(a, image, at, signal),
  };
}
