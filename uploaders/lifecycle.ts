// The image lifecycle seam: what the coordinator's `farm images --remote`, `farm rollback`,
// `farm release` and `farm prune` ask of a target, beside the upload seam (uploader.ts). Every
// image the farm publishes carries its identity on the target itself (tags, properties, or
// libvirt's metadata volume), so these work from the targets alone, with no local records.

/** Channels an image moves through: published as candidate, promoted by `farm release`. */
export const CHANNELS = ['candidate', 'released'] as const;
export type Channel = (typeof CHANNELS)[number];

/** What an upload writes on every object it creates (UploadContext.identity). */
export interface FarmIdentity {
  buildId: string;
  arch: string;
  /** The image name. */
  name: string;
  channel: Channel;
  /** A stable id of the inventory's naming (naming.name): whose images these are. */
  inventory: string;
}

/** Identity keys as AWS and Azure tags (IBM user tags and Glance properties map them, see each kind). */
export const IDENTITY_TAGS = {
  buildId: 'farm:build-id',
  arch: 'farm:arch',
  name: 'farm:name',
  channel: 'farm:channel',
  inventory: 'farm:inventory',
  current: 'farm:current',
  permanent: 'farm:permanent',
} as const;

export function identityTags(id: FarmIdentity): Record<string, string> {
  return {
    [IDENTITY_TAGS.buildId]: id.buildId,
    [IDENTITY_TAGS.arch]: id.arch,
    [IDENTITY_TAGS.name]: id.name,
    [IDENTITY_TAGS.channel]: id.channel,
    [IDENTITY_TAGS.inventory]: id.inventory,
  };
}

/** The identity written in tags, or undefined when the tags carry none (not the farm's). */
export function identityFromTags(tags: Record<string, string | undefined>): (FarmIdentity & { current: boolean; permanent: boolean }) | undefined {
  const buildId = tags[IDENTITY_TAGS.buildId];
  const inventory = tags[IDENTITY_TAGS.inventory];
  if (!buildId || !inventory) return undefined;
  const channel = tags[IDENTITY_TAGS.channel] === 'released' ? 'released' : 'candidate';
  return {
    buildId,
    inventory,
    arch: tags[IDENTITY_TAGS.arch] ?? '',
    name: tags[IDENTITY_TAGS.name] ?? '',
    channel,
    current: tags[IDENTITY_TAGS.current] === 'true',
    permanent: tags[IDENTITY_TAGS.permanent] === 'true',
  };
}

/** One image a target holds, as its own listing shows it. */
export interface RemoteImage {
  target: string;
  kind: string;
  /** Region, hypervisor or cloud. */
  location: string;
  imageId: string;
  imageName: string;
  buildId: string;
  arch: string;
  channel: Channel;
  /** The one image per arch and target `farm release` last promoted. */
  current: boolean;
  /** Tagged permanent by hand: prune never touches it. */
  permanent: boolean;
  /** ISO times, where the target reports them. */
  createdAt?: string;
  lastLaunchedAt?: string;
  deprecatedAt?: string;
  /** What goes with it when it is removed (snapshot ids, COS object keys, metadata volumes). */
  parts: string[];
  /** A backing object whose image is gone already (a half-done removal): removing it finishes that. */
  leftover?: boolean;
}

/** What `release` does to one image. */
export interface ReleaseChange {
  /** Apply the target's sharing settings (launch permissions, visibility). */
  share: boolean;
  channel: Channel;
  current: boolean;
}

/** The lifecycle operations of one target (each kind in its own folder). */
export interface ImageLifecycle {
  /** The images of this inventory (FarmIdentity.inventory) on the target, leftovers included. */
  listImages(inventory: string, signal: AbortSignal): Promise<RemoteImage[]>;
  /** Removes the image and its parts; what is already gone is fine. Returns what it removed. */
  removeImage(image: RemoteImage, signal: AbortSignal): Promise<string[]>;
  /** Sets channel, current mark and sharing (release, and taking the current mark off). */
  markImage(image: RemoteImage, change: ReleaseChange, signal: AbortSignal): Promise<void>;
  /** Marks the image deprecated (AWS EnableImageDeprecation; a tag or property elsewhere). */
  deprecateImage(image: RemoteImage, at: Date, signal: AbortSignal): Promise<void>;
}
