// The coordinator's side of the image lifecycle (uploaders/lifecycle.ts): every target of the
// inventory asked for the images of this inventory, from the targets alone (no build records),
// and the operations of `farm rollback`, `farm release` and `farm prune` run through the
// uploader that listed each image.

import type { Arch } from '../core/arch.ts';
import { FarmError, errorMessage } from '../core/errors.ts';
import type { LoadedInventory, Target } from '../inventory/schema.ts';
import type { RemoteImage } from '../../uploaders/lifecycle.ts';
import type { Uploader } from '../../uploaders/uploader.ts';
import { inventoryId, selectTargets, type TargetSelection, type UploaderFactory } from './upload-stage.ts';

/** A remote image and the uploader that found it (which knows how to change it). */
export interface Held extends RemoteImage {
  via: Uploader;
}

export interface Listing {
  images: Held[];
  /** Targets that could not be listed: `name: why`. Their images are unknown, not absent. */
  failures: string[];
}

export interface TargetOfInventory {
  target: Target;
  name: string;
  arches: Arch[];
}

/** Every selected target of the inventory, once per target object, with the arches it serves. */
export function inventoryTargets(loaded: LoadedInventory, sel: TargetSelection = {}): TargetOfInventory[] {
  const out = new Map<Target, TargetOfInventory>();
  for (const [arch, cfg] of Object.entries(loaded.inventory.arches) as [Arch, { targets: Target[] } | undefined][]) {
    for (const { target, name } of selectTargets(cfg?.targets ?? [], sel)) {
      const t = out.get(target) ?? { target, name, arches: [] };
      t.arches.push(arch);
      out.set(target, t);
    }
  }
  return [...out.values()];
}

/** The key that makes one image one: two targets of a name (one per arch) list the same cloud. */
export function imageKey(i: Pick<RemoteImage, 'target' | 'kind' | 'location' | 'imageId'>): string {
  return `${i.kind}\u0000${i.target}\u0000${i.location}\u0000${i.imageId}`;
}

export async function listRemote(loaded: LoadedInventory, sel: TargetSelection, factory: UploaderFactory, signal: AbortSignal): Promise<Listing> {
  const inventory = inventoryId(loaded);
  const targets = inventoryTargets(loaded, sel);
  const failures: string[] = [];
  const lists = await Promise.all(
    targets.map(async ({ target, name, arches }) => {
      const via = factory(target, name);
      try {
        if (!via.listImages) throw new FarmError('UPLOAD', `the ${target.kind} target kind cannot list its images`);
        return (await via.listImages(inventory, signal)).map((i) => ({ ...i, via, serves: (arches as string[]).includes(i.arch) }));
      } catch (err) {
        failures.push(`${name}: ${errorMessage(err)}`);
        return [];
      }
    }),
  );
  // Two targets of one name (one per arch, different settings) list the same images: each image
  // goes with the target of its own arch, whose settings (share_accounts, gallery) are its own.
  const seen = new Map<string, Held & { serves: boolean }>();
  for (const i of lists.flat()) {
    const prior = seen.get(imageKey(i));
    if (!prior || (!prior.serves && i.serves)) seen.set(imageKey(i), i);
  }
  for (const i of seen.values()) delete (i as { serves?: boolean }).serves;
  const images = [...seen.values()].sort((a, b) => (b.createdAt ?? '').localeCompare(a.createdAt ?? '') || a.target.localeCompare(b.target));
  return { images, failures: [...new Set(failures)] };
}

/** The JSON shape of a remote image (no uploader). */
export function plainImage(i: Held | RemoteImage): RemoteImage {
  const { via: _via, ...rest } = i as Held;
  return rest;
}

export interface Removal {
  image: RemoteImage;
  removed: string[];
  error?: string;
}

/** Removes images, one target at a time per target (clouds throttle), targets in parallel. */
export async function removeAll(images: readonly Held[], signal: AbortSignal): Promise<Removal[]> {
  const byTarget = new Map<string, Held[]>();
  for (const i of images) byTarget.set(i.target, [...(byTarget.get(i.target) ?? []), i]);
  const results = await Promise.all(
    [...byTarget.values()].map(async (list) => {
      const out: Removal[] = [];
      // Images before leftovers: an AMI before the snapshots it still holds.
      for (const i of [...list].sort((a, b) => Number(a.leftover ?? false) - Number(b.leftover ?? false))) {
        try {
          out.push({ image: plainImage(i), removed: await i.via.removeImage!(plainImage(i), signal) });
        } catch (err) {
          out.push({ image: plainImage(i), removed: [], error: errorMessage(err) });
        }
      }
      return out;
    }),
  );
  return results.flat();
}
