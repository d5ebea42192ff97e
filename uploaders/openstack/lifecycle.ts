// The Glance image lifecycle: the farm's images found by their farm_* properties, removed,
// released (visibility, channel and current properties) and deprecated (a property: Glance has
// no deprecation of its own, and os_hidden would hide the image from the farm's own listing too).

import type { Channel, ReleaseChange, RemoteImage } from '../lifecycle.ts';
import type { Glance, GlanceImage } from './glance.ts';

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

export async function glanceListImages(
  glance: Glance,
  owner: string,
  inventory: string,
  where: { target: string; location: string },
  signal: AbortSignal,
): Promise<RemoteImage[]> {
  // Glance filters on any property given as a query parameter.
  const images = await glance.list({ owner, farm_inventory: inventory }, signal);
  return images
    .filter((img: GlanceImage) => str(img.farm_build_id) && str(img.farm_inventory) === inventory)
    .map((img) => ({
      target: where.target,
      kind: 'openstack',
      location: where.location,
      imageId: img.id,
      imageName: img.name ?? str(img.farm_name) ?? '',
      buildId: str(img.farm_build_id)!,
      arch: str(img.farm_arch) ?? str(img.architecture) ?? '',
      channel: (str(img.farm_channel) === 'released' ? 'released' : 'candidate') as Channel,
      current: str(img.farm_current) === 'true',
      permanent: str(img.farm_permanent) === 'true',
      createdAt: str(img.created_at),
      deprecatedAt: str(img.farm_deprecated_at),
      parts: [],
    }));
}

export async function glanceRemove(glance: Glance, image: RemoteImage, signal: AbortSignal): Promise<string[]> {
  // DELETE answers 404 for an image gone already, which remove() counts as deleted.
  await glance.remove(image.imageId, signal);
  return [`Glance image ${image.imageId}`];
}

export async function glanceMark(glance: Glance, image: RemoteImage, change: ReleaseChange, visibility: string, signal: AbortSignal): Promise<void> {
  const ops: Array<{ op: 'add' | 'replace' | 'remove'; path: string; value?: unknown }> = [{ op: 'add', path: '/farm_channel', value: change.channel }];
  if (change.share) ops.push({ op: 'replace', path: '/visibility', value: visibility });
  if (change.current) ops.push({ op: 'add', path: '/farm_current', value: 'true' });
  else if (image.current) ops.push({ op: 'remove', path: '/farm_current' });
  await glance.update(image.imageId, ops, signal);
}

export async function glanceDeprecate(glance: Glance, image: RemoteImage, at: Date, signal: AbortSignal): Promise<void> {
  await glance.update(image.imageId, [{ op: 'add', path: '/farm_deprecated_at', value: at.toISOString() }], signal);
}
