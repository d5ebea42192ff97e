// What a killed upload can leave in Azure, and how a rerun removes it: the staging page blob
// (always removed: it is never part of a published image), and the managed image or gallery
// image version (left for find() when it succeeded under this attempt, removed otherwise). An
// object of that name that another attempt made is not ours and is left alone.

import { errorMessage } from '../../src/core/errors.ts';
import type { HalfMade, HalfMadeResult } from '../uploader.ts';
import type { Arm } from './arm.ts';
import type { ContainerClient } from '@azure/storage-blob';
import { removeBlob } from './blob.ts';

export const STAGING_BLOB = 'azure-blob';
export const MANAGED_IMAGE = 'azure-image';
export const GALLERY_VERSION = 'azure-gallery-version';
/** The tag (and, as farm_attempt, blob metadata) carrying the attempt token. */
export const ATTEMPT_TAG = 'farm-attempt';

export interface AzureAccess {
  arm: Arm;
  container: ContainerClient;
  resourceGroup: string;
  /** gallery/image of the target, for versions. */
  gallery?: { name: string; image: string };
}

interface Found {
  tags?: Record<string, string>;
  provisioningState?: string;
}

async function judge(o: HalfMade, found: Found | undefined, remove: () => Promise<void>): Promise<HalfMadeResult> {
  if (!found || found.tags?.[ATTEMPT_TAG] !== o.attempt) return { object: o, outcome: 'gone' };
  if (found.provisioningState === 'Succeeded') return { object: o, outcome: 'complete' };
  await remove();
  return { object: o, outcome: 'removed' };
}

/** Removes one object an attempt recorded; a failure is its result, not a throw. */
export async function removeAzureLeftover(a: AzureAccess, o: HalfMade, signal: AbortSignal): Promise<HalfMadeResult> {
  try {
    switch (o.kind) {
      case STAGING_BLOB: {
        const removed = await removeBlob(a.container.getPageBlobClient(o.name), signal);
        return { object: o, outcome: removed ? 'removed' : 'gone' };
      }
      case MANAGED_IMAGE: {
        const image = await a.arm.getImage(a.resourceGroup, o.name, signal);
        return await judge(o, image, () => a.arm.deleteImage(a.resourceGroup, o.name, signal));
      }
      case GALLERY_VERSION: {
        if (!a.gallery) return { object: o, error: 'the target has no gallery any more: remove the version by hand' };
        const { name: gallery, image } = a.gallery;
        const version = await a.arm.getVersion(a.resourceGroup, gallery, image, o.name, signal);
        return await judge(o, version, () => a.arm.deleteVersion(a.resourceGroup, gallery, image, o.name, signal));
      }
      default:
        return { object: o, error: `not an object the azure uploader makes (${o.kind})` };
    }
  } catch (err) {
    return { object: o, error: errorMessage(err) };
  }
}
