// The uploader seam: what the pipeline calls on every target kind, one folder per kind behind it
// (uploaders/<kind>/, whose kind.ts makes its uploaders: see uploaders/kind.ts).

import type { Artifact } from '../src/core/artifact.ts';
import type { FarmIdentity, ImageLifecycle } from './lifecycle.ts';

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
  /** Tags/labels to put on everything created: farm-build-id, farm-image-name, farm-attempt, ... */
  tags: Record<string, string>;
  /** Where the upload records each object before it creates it (default: nowhere). */
  journal?: UploadJournal;
  /** The identity every image carries on its target (lifecycle.ts); absent in direct calls. */
  identity?: FarmIdentity;
}

/**
 * An object an upload creates, recorded before the create call so that a run killed half-way
 * leaves a trace (builds/<id>/state.json) a rerun can remove. `name` and the attempt token (which
 * the object also carries: a tag, property or metadata from ctx.tags['farm-attempt']) find it when
 * the run died before its id was known.
 */
export interface HalfMade {
  /** glance-image, ebs-snapshot, ami, s3-object, s3-multipart, import-task, cos-object,
   *  cos-multipart, vpc-image, libvirt-volume. */
  kind: string;
  /** Region, bucket or hypervisor it lives in. */
  location: string;
  /** Its name: image name, object key, volume name. */
  name: string;
  /** Token of the upload attempt that made it. */
  attempt: string;
  /** Known once the create call answered. */
  id?: string;
  /** What else the uploader needs to judge it (e.g. the size a complete one has). */
  detail?: Record<string, string>;
}

export interface JournalEntry {
  /** Records the id the create call answered. */
  identify(id: string): Promise<void>;
  /** The object is gone (removed, or never made): its record goes. */
  drop(): Promise<void>;
}

export interface UploadJournal {
  /** This attempt's token (also in ctx.tags['farm-attempt']). */
  readonly attempt: string;
  /** Records an object about to be created; resolves once the record is on disk. */
  begin(object: Omit<HalfMade, 'attempt'>): Promise<JournalEntry>;
}

/** What removeHalfMade did with one object: removed it, found it gone, or found it complete (left
 *  for find() to adopt); or `error`, and the record stays for a later run. */
export interface HalfMadeResult {
  object: HalfMade;
  outcome?: 'removed' | 'gone' | 'complete';
  error?: string;
}

const NO_ENTRY: JournalEntry = { identify: async () => {}, drop: async () => {} };

/** The journal of an upload nobody records (direct calls, tests). */
export const NO_JOURNAL: UploadJournal = { attempt: 'unrecorded', begin: async () => NO_ENTRY };

/** One image the upload created (one per region for AWS copies, per region for IBM, per hypervisor). */
export interface PublishedImage {
  target: string; // target name
  kind: string; // the target's kind: aws, libvirt, ...
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

export interface Uploader extends Partial<ImageLifecycle> {
  readonly name: string;
  readonly kind: string;
  /** Checks credentials and settings without creating anything; runs before any build starts. */
  preflight(signal: AbortSignal): Promise<void>;
  /** Images already published under this name (for idempotent re-runs). */
  find(imageName: string, artifact: Artifact, signal: AbortSignal): Promise<PublishedImage[]>;
  /** Uploads and registers; on failure removes whatever it created before rethrowing. */
  upload(artifact: Artifact, imageName: string, ctx: UploadContext): Promise<PublishedImage[]>;
  /** Removes what an upload killed half-way left (its journal's records), before find(): one
   *  result per object; a failure to remove one is its result, not a throw. */
  removeHalfMade?(objects: readonly HalfMade[], signal: AbortSignal): Promise<HalfMadeResult[]>;
}

/**
 * Removing a published image and what backs it (snapshots, objects, volumes). Not part of the seam
 * (the pipeline never removes what it published): each kind's uploader has it for its tests and
 * for the image lifecycle a later issue adds.
 */
export interface RemovesImages {
  delete(image: PublishedImage, signal: AbortSignal): Promise<void>;
}
