// The uploader seam: one interface for every target kind, one module per kind behind it
// (uploaders/aws, uploaders/ibmcloud, uploaders/libvirt, uploaders/openstack).

import type { Artifact, DiskFormat } from '../workers/artifact.ts';
import type { Target } from '../src/inventory/schema.ts';

export interface UploadProgress {
  /** Bytes of the artifact handled so far (sent or skipped as holes). */
  done: number;
  total: number;
  /** Bytes actually sent over the wire. */
  sent: number;
  phase: string;
}

export interface UploadContext {
  signal: AbortSignal;
  onProgress?: (p: UploadProgress) => void;
  log: (message: string) => void;
  /** Tags/labels to put on everything created: farm-build-id, farm-image-name, ... */
  tags: Record<string, string>;
}

/** One image the upload created (one per region for AWS copies, per region for IBM, per hypervisor). */
export interface PublishedImage {
  target: string; // target name
  kind: Target['kind'];
  /** Region, host or cloud the image lives in. */
  location: string;
  imageName: string;
  /** ami-..., IBM image id, Glance id, libvirt volume path. */
  imageId: string;
  /** Packer-style artifact id, e.g. "us-east-1:ami-0123". */
  artifactId: string;
  /** True when an existing image with this name was found instead of uploading again. */
  existing: boolean;
}

export interface Uploader {
  readonly name: string;
  readonly kind: Target['kind'];
  /** Disk formats this target takes, in preference order. */
  readonly formats: readonly DiskFormat[];
  /** Checks credentials and settings without creating anything; runs before any build starts. */
  preflight(signal: AbortSignal): Promise<void>;
  /** Images already published under this name (for idempotent re-runs). */
  find(imageName: string, artifact: Artifact, signal: AbortSignal): Promise<PublishedImage[]>;
  /** Uploads and registers; on failure removes whatever it created before rethrowing. */
  upload(artifact: Artifact, imageName: string, ctx: UploadContext): Promise<PublishedImage[]>;
  /** Removes a published image and what backs it (snapshots, objects, volumes). */
  delete(image: PublishedImage, signal: AbortSignal): Promise<void>;
}
