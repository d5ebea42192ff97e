// What the staging blob becomes: a managed image named after the farm's image, or a version of a
// Compute Gallery image definition (named by build time, the farm's name in a tag). Both are
// checked before the upload, so a taken name or a definition that cannot take the build fails
// before any byte is sent.

import type { GalleryImageVersion, Image } from '@azure/arm-compute';
import { FarmError } from '../../src/core/errors.ts';
import type { Artifact } from '../../src/core/artifact.ts';
import type { HalfMade } from '../uploader.ts';
import type { Arm } from './arm.ts';
import { GALLERY_VERSION, MANAGED_IMAGE } from './leftovers.ts';
import { galleryVersion } from './names.ts';
import type { AzureTarget } from './schema.ts';

// Gallery versions of builds that finished in the same second get .1, .2, ...
const MAX_VERSION_SUFFIX = 20;

export interface ImagePlan {
  /** The step, for messages. */
  what: string;
  /** The journal record of the image, before it is created. */
  record: Omit<HalfMade, 'attempt'>;
  /** Makes it from the blob; answers its resource id. */
  create(blobUri: string, tags: Record<string, string>, signal: AbortSignal): Promise<string>;
}

export function storageAccountId(t: AzureTarget): string {
  return `/subscriptions/${t.subscription_id}/resourceGroups/${t.storage_resource_group ?? t.resource_group}/providers/Microsoft.Storage/storageAccounts/${t.storage_account}`;
}

/** Refuses a taken managed image name; checks the gallery definition and picks a free version. */
export async function planImage(arm: Arm, t: AzureTarget, imageName: string, artifact: Artifact, architecture: string, signal: AbortSignal): Promise<ImagePlan> {
  return t.gallery ? planVersion(arm, t, t.gallery, artifact, architecture, signal) : planManaged(arm, t, imageName, signal);
}

async function planManaged(arm: Arm, t: AzureTarget, imageName: string, signal: AbortSignal): Promise<ImagePlan> {
  const existing = await arm.getImage(t.resource_group, imageName, signal);
  if (existing) {
    throw new FarmError('UPLOAD', `an image named ${imageName} exists already in ${t.resource_group} (${existing.provisioningState ?? 'unknown state'})`, {
      hint: 'Use a new image name, or delete the existing image first.',
    });
  }
  return {
    what: `create managed image ${imageName}`,
    record: { kind: MANAGED_IMAGE, location: `${t.resource_group}/${t.location}`, name: imageName },
    create: async (blobUri, tags, s) => {
      const body: Image = { location: t.location, tags, hyperVGeneration: 'V2', storageProfile: { osDisk: { osType: 'Linux', osState: 'Generalized', blobUri } } };
      const made = await arm.createImage(t.resource_group, imageName, body, s);
      return made.id ?? imageName;
    },
  };
}

async function planVersion(
  arm: Arm,
  t: AzureTarget,
  g: NonNullable<AzureTarget['gallery']>,
  artifact: Artifact,
  architecture: string,
  signal: AbortSignal,
): Promise<ImagePlan> {
  const definition = await arm.getGalleryImage(t.resource_group, g.name, g.image, signal);
  const problems: string[] = [];
  if ((definition.architecture ?? 'x64') !== architecture) problems.push(`its architecture is ${definition.architecture ?? 'x64'}, the build's is ${architecture}`);
  if (definition.hyperVGeneration !== 'V2') problems.push(`its Hyper-V generation is ${definition.hyperVGeneration ?? 'V1'}, UEFI images need V2`);
  if (definition.osType !== 'Linux') problems.push(`its OS type is ${definition.osType}, not Linux`);
  if (problems.length) {
    throw new FarmError('UPLOAD', `gallery image definition ${g.name}/${g.image} cannot take this ${artifact.arch} build: ${problems.join('; ')}`, {
      hint: `Point gallery.image at a Linux, V2 definition with architecture ${architecture}.`,
    });
  }
  const taken = new Set((await arm.listVersions(t.resource_group, g.name, g.image, signal)).map((v) => v.name));
  let version: string | undefined;
  for (let n = 0; n <= MAX_VERSION_SUFFIX && !version; n++) {
    const v = galleryVersion(artifact.builtAt, n);
    if (!taken.has(v)) version = v;
  }
  if (!version) throw new FarmError('UPLOAD', `gallery image ${g.name}/${g.image} has versions ${galleryVersion(artifact.builtAt)} to .${MAX_VERSION_SUFFIX} already`);
  const chosen = version;
  return {
    what: `create gallery image version ${g.name}/${g.image}/${chosen}`,
    record: { kind: GALLERY_VERSION, location: `${t.resource_group}/${g.name}/${g.image}`, name: chosen },
    create: async (blobUri, tags, s) => {
      const body: GalleryImageVersion = {
        location: t.location,
        tags,
        publishingProfile: { targetRegions: [t.location, ...g.target_regions.filter((r) => r !== t.location)].map((name) => ({ name })) },
        storageProfile: { osDiskImage: { source: { uri: blobUri, storageAccountId: storageAccountId(t) } } },
      };
      const made = await arm.createVersion(t.resource_group, g.name, g.image, chosen, body, s);
      return made.id ?? chosen;
    },
  };
}
