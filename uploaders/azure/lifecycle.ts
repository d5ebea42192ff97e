// The Azure image lifecycle: the farm's managed images (or gallery versions) found by their
// farm:* tags, with any staging blob a killed upload left (found by its metadata), removed,
// marked (channel and current tags) and deprecated (a tag; gallery versions also leave "latest").

import { IDENTITY_TAGS, identityFromTags, type ReleaseChange, type RemoteImage } from '../lifecycle.ts';
import type { AzureAccess } from './leftovers.ts';
import type { AzureTarget } from './schema.ts';

const DEPRECATED_TAG = 'farm:deprecated-at';

interface Where {
  target: string;
  t: AzureTarget;
}

export async function azureListImages(a: AzureAccess, w: Where, inventory: string, signal: AbortSignal): Promise<RemoteImage[]> {
  const t = w.t;
  const resources = t.gallery
    ? await a.arm.listVersions(t.resource_group, t.gallery.name, t.gallery.image, signal)
    : await a.arm.listImages(t.resource_group, signal);
  const out: RemoteImage[] = [];
  for (const r of resources) {
    const tags = r.tags ?? {};
    const id = identityFromTags(tags);
    if (!id || id.inventory !== inventory || !r.id) continue;
    const published = (r as { publishingProfile?: { publishedDate?: Date } }).publishingProfile?.publishedDate;
    out.push({
      target: w.target,
      kind: 'azure',
      location: t.location,
      imageId: r.id,
      imageName: id.name,
      buildId: id.buildId,
      arch: id.arch,
      channel: id.channel,
      current: id.current,
      permanent: id.permanent,
      ...(published ? { createdAt: new Date(published).toISOString() } : {}),
      ...(tags[DEPRECATED_TAG] ? { deprecatedAt: tags[DEPRECATED_TAG] } : {}),
      parts: [],
    });
  }
  // Staging blobs are removed after every upload; one still there is a killed upload's.
  for await (const b of a.container.listBlobsFlat({ includeMetadata: true, abortSignal: signal })) {
    const m = b.metadata ?? {};
    if (m.farm_inventory !== inventory || !m.farm_build_id) continue;
    out.push({
      target: w.target,
      kind: 'azure',
      location: t.location,
      imageId: b.name,
      imageName: m.farm_name ?? b.name,
      buildId: m.farm_build_id,
      arch: m.farm_arch ?? '',
      channel: 'candidate',
      current: false,
      permanent: false,
      ...(b.properties.createdOn ? { createdAt: b.properties.createdOn.toISOString() } : {}),
      parts: [],
      leftover: true,
    });
  }
  return out;
}

export async function azureRemove(a: AzureAccess, t: AzureTarget, image: RemoteImage, signal: AbortSignal): Promise<string[]> {
  if (image.leftover) {
    const gone = await a.container.getPageBlobClient(image.imageId).deleteIfExists({ deleteSnapshots: 'include', abortSignal: signal });
    return gone.succeeded ? [`staging blob ${image.imageId}`] : [];
  }
  // Deletes treat "not found" as done (arm.ts).
  if (t.gallery) await a.arm.deleteVersion(t.resource_group, t.gallery.name, t.gallery.image, image.imageId.split('/').at(-1)!, signal);
  else await a.arm.deleteImage(t.resource_group, image.imageId.split('/').at(-1)!, signal);
  return [`${t.gallery ? 'gallery image version' : 'image'} ${image.imageId}`];
}

async function retag(a: AzureAccess, t: AzureTarget, image: RemoteImage, change: (tags: Record<string, string>) => void, signal: AbortSignal): Promise<void> {
  const name = image.imageId.split('/').at(-1)!;
  if (t.gallery) {
    const v = await a.arm.getVersion(t.resource_group, t.gallery.name, t.gallery.image, name, signal);
    const tags = { ...(v?.tags ?? {}) };
    change(tags);
    await a.arm.client.galleryImageVersions.beginUpdateAndWait(t.resource_group, t.gallery.name, t.gallery.image, name, { tags }, { abortSignal: signal });
  } else {
    const img = await a.arm.getImage(t.resource_group, name, signal);
    const tags = { ...(img?.tags ?? {}) };
    change(tags);
    await a.arm.client.images.beginUpdateAndWait(t.resource_group, name, { tags }, { abortSignal: signal });
  }
}

export async function azureMark(a: AzureAccess, t: AzureTarget, image: RemoteImage, change: ReleaseChange, signal: AbortSignal): Promise<void> {
  if (image.leftover) return;
  await retag(
    a,
    t,
    image,
    (tags) => {
      tags[IDENTITY_TAGS.channel] = change.channel;
      if (change.current) tags[IDENTITY_TAGS.current] = 'true';
      else delete tags[IDENTITY_TAGS.current];
    },
    signal,
  );
}

export async function azureDeprecate(a: AzureAccess, t: AzureTarget, image: RemoteImage, at: Date, signal: AbortSignal): Promise<void> {
  if (image.leftover) return;
  await retag(a, t, image, (tags) => void (tags[DEPRECATED_TAG] = at.toISOString()), signal);
}
