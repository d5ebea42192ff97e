// The libvirt image lifecycle, from each hypervisor's pool alone: the farm's image volumes are
// the ones with a metadata volume (metadata.ts) of this inventory; removing deletes the image
// volume first and its metadata last, so a removal cut short is found again and finished.

import type { ImageLifecycle, ReleaseChange, RemoteImage } from '../lifecycle.ts';
import { HypervisorClient, type HypervisorOptions } from './hypervisor.ts';
import { METADATA_SUFFIX, metadataVolume, readMetadata, writeMetadata, type VolumeMetadata } from './metadata.ts';
import type { LibvirtTarget } from './schema.ts';
import { uriLocation } from './uri.ts';
import { FarmError } from '../../src/core/errors.ts';

export interface LibvirtLifecycleAccess {
  target: LibvirtTarget;
  name: string;
  opts: HypervisorOptions;
}

async function withClient<T>(a: LibvirtLifecycleAccess, hv: LibvirtTarget['hypervisors'][number], signal: AbortSignal, fn: (c: HypervisorClient) => Promise<T>): Promise<T> {
  const c = await HypervisorClient.open(hv, a.target.pool, a.opts, signal);
  try {
    return await fn(c);
  } finally {
    await c.close();
  }
}

function hypervisorAt(a: LibvirtLifecycleAccess, location: string) {
  const hv = a.target.hypervisors.find((h) => uriLocation(h.uri) === location);
  if (!hv) throw new FarmError('UPLOAD', `libvirt target ${a.name} has no hypervisor at ${location}`);
  return hv;
}

function remote(a: LibvirtLifecycleAccess, location: string, meta: VolumeMetadata, imageId: string, leftover: boolean): RemoteImage {
  return {
    target: a.name,
    kind: 'libvirt',
    location,
    imageId,
    imageName: meta.volume,
    buildId: meta.buildId,
    arch: meta.arch,
    channel: meta.channel,
    current: meta.current === true,
    permanent: meta.permanent === true,
    createdAt: meta.createdAt,
    ...(meta.deprecatedAt ? { deprecatedAt: meta.deprecatedAt } : {}),
    parts: [metadataVolume(meta.volume)],
    ...(leftover ? { leftover: true } : {}),
  };
}

export async function libvirtListImages(a: LibvirtLifecycleAccess, inventory: string, signal: AbortSignal): Promise<RemoteImage[]> {
  const out: RemoteImage[] = [];
  // Hypervisors one after the other: each read is an SSH connection, and listings are small.
  for (const hv of a.target.hypervisors) {
    await withClient(a, hv, signal, async (c) => {
      const names = await c.volumeNames(signal);
      for (const n of names.filter((x) => x.endsWith(METADATA_SUFFIX))) {
        const meta = await readMetadata(c, n, signal);
        if (!meta || meta.inventory !== inventory) continue;
        const vol = names.includes(meta.volume) ? await c.lookup(meta.volume, signal) : undefined;
        out.push(remote(a, c.location, meta, vol ? vol.path : n, !vol));
      }
    });
  }
  return out;
}

export async function libvirtRemove(a: LibvirtLifecycleAccess, image: RemoteImage, signal: AbortSignal): Promise<string[]> {
  return withClient(a, hypervisorAt(a, image.location), signal, async (c) => {
    const removed: string[] = [];
    if (await c.delete(image.imageName, signal)) removed.push(`volume ${image.imageName} on ${c.display}`);
    const meta = metadataVolume(image.imageName);
    if (await c.delete(meta, signal)) removed.push(`metadata volume ${meta} on ${c.display}`);
    return removed;
  });
}

async function rewrite(a: LibvirtLifecycleAccess, image: RemoteImage, change: (m: VolumeMetadata) => void, signal: AbortSignal): Promise<void> {
  if (image.leftover) return;
  await withClient(a, hypervisorAt(a, image.location), signal, async (c) => {
    const meta = await readMetadata(c, metadataVolume(image.imageName), signal);
    if (!meta) throw new FarmError('UPLOAD', `the metadata volume of ${image.imageName} on ${c.display} is gone`);
    change(meta);
    await writeMetadata(c, meta, signal);
  });
}

export async function libvirtMark(a: LibvirtLifecycleAccess, image: RemoteImage, change: ReleaseChange, signal: AbortSignal): Promise<void> {
  await rewrite(
    a,
    image,
    (m) => {
      m.channel = change.channel;
      m.current = change.current;
    },
    signal,
  );
}

export async function libvirtDeprecate(a: LibvirtLifecycleAccess, image: RemoteImage, at: Date, signal: AbortSignal): Promise<void> {
  await rewrite(a, image, (m) => void (m.deprecatedAt = at.toISOString()), signal);
}

/** The four operations, for the uploader to carry. */
export function libvirtLifecycle(a: LibvirtLifecycleAccess): ImageLifecycle {
  return {
    listImages: (inventory, signal) => libvirtListImages(a, inventory, signal),
    removeImage: (image, signal) => libvirtRemove(a, image, signal),
    markImage: (image, change, signal) => libvirtMark(a, image, change, signal),
    deprecateImage: (image, at, signal) => libvirtDeprecate(a, image, at, signal),
  };
}
