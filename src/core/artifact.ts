// The value that flows from workers/ to uploaders/: one fetched, verified disk image on the
// coordinator. It lives in the core because both sides use it: uploaders take Artifacts and never
// look at workers, workers never import uploaders.

import type { Arch } from './arch.ts';
import type { ImageType } from './image-types.ts';

export type DiskFormat = 'raw' | 'qcow2' | 'vmdk' | 'vhd';

export interface ArtifactFile {
  /** Absolute path on the coordinator. */
  path: string;
  /** Path relative to the build directory, as recorded in the manifest. */
  name: string;
  /** Apparent size in bytes (a sparse raw's full size). */
  size: number;
  sha256: string;
  format: DiskFormat;
}

export interface Artifact {
  buildId: string;
  arch: Arch;
  /** bib --type that produced it. */
  type: ImageType;
  /** The image name from the naming template (targets may rename). */
  imageName: string;
  /** The disk image itself; for ami/raw a raw disk, for qcow2 a qcow2. */
  disk: ArtifactFile;
  /** Other outputs (bib manifest). */
  extra: ArtifactFile[];
  worker: string;
  /** UTC ISO time the build finished. */
  builtAt: string;
}

/** Format of a bib type's disk output. */
export const TYPE_FORMAT: Record<ImageType, DiskFormat> = {
  ami: 'raw',
  raw: 'raw',
  qcow2: 'qcow2',
  vmdk: 'vmdk',
  vhd: 'vhd',
  gce: 'raw',
};
