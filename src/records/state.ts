// The state file (builds/<id>/state.json) records each arch's progress and each (arch, target)
// upload, written atomically after every step, so a later run can resume what is pending
// (`farm upload BUILD_ID`) and no partial image is ever recorded as done. These are its types;
// ./build-record.ts is its only writer and ./state-schema.ts checks it on every read.

import type { Arch } from '../core/arch.ts';
import type { ImageType } from '../core/image-types.ts';
import type { ArtifactFile } from '../core/artifact.ts';
import type { HalfMade, PublishedImage } from '../../uploaders/uploader.ts';

export type ArchStep = 'planned' | 'building' | 'built' | 'fetching' | 'fetched' | 'failed';
export type UploadStep = 'uploading' | 'uploaded' | 'failed';

export interface ArtifactRecord {
  type: ImageType;
  imageName: string;
  disk: ArtifactFile;
  extra: ArtifactFile[];
  /** The worker that built it. */
  worker?: string;
}

/** One builder run of an arch: its types, the worker it ran on, and when it started and ended. */
export interface RunRecord {
  types: ImageType[];
  worker?: string;
  at: { started?: string; built?: string };
}

export interface UploadRecord {
  target: string;
  kind: string;
  /** The artifact type uploaded (a target takes one of the arch's artifacts). */
  type: ImageType;
  step: UploadStep;
  images: PublishedImage[];
  error?: string;
  at: Record<string, string>;
  /** Objects an upload began to create and has not finished or removed (see upload-journal.ts):
   *  a rerun removes them before it looks for or uploads the image. */
  halfMade?: HalfMadeRecord[];
}

/** A journal record: the object, and when and under which key it was recorded. */
export interface HalfMadeRecord extends HalfMade {
  key: string;
  at: string;
}

export interface ArchState {
  arch: Arch;
  step: ArchStep;
  types: ImageType[];
  imageName: string;
  /** The workers its runs were placed on. */
  worker?: string;
  error?: string;
  /** Its builder runs, in plan order (set once it starts building). */
  runs?: RunRecord[];
  artifacts: ArtifactRecord[];
  uploads: Record<string, UploadRecord>;
  /** UTC ISO time each step was reached. */
  at: Partial<Record<ArchStep, string>>;
  /** Seconds spent building (podman build + bib) and fetching. */
  durations?: { build?: number; fetch?: number };
  /** The smoke check's verdict on each booted disk (the types sharing it), before the fetch. */
  smoke?: SmokeRecord[];
}

/** One smoke boot (workers/smoke/): passed, failed, or skipped (off, or not bootable) and why. */
export interface SmokeRecord {
  types: ImageType[];
  status: 'passed' | 'failed' | 'skipped';
  reason?: string;
  /** The disk booted (its record name), how and how long. */
  disk?: string;
  accel?: 'kvm' | 'tcg';
  boot?: 'firmware' | 'direct';
  seconds?: number;
  /** block or warn: what a failure meant. */
  policy?: 'block' | 'warn';
  /** The console log, relative to the build directory. */
  log?: string;
  banner?: string;
  lastLines?: string[];
}

export type BuildStatus = 'running' | 'succeeded' | 'failed' | 'partial' | 'cancelled';

export interface BuildState {
  /** The schema version (./state-schema.ts STATE_VERSION). */
  version: 1;
  buildId: string;
  inventory: string;
  startedAt: string;
  finishedAt?: string;
  status: BuildStatus;
  /** Digest of everything that decides the images (set by --if-changed logic). */
  key?: string;
  trigger?: string;
  /** An image source: the reference, the list's digest and each arch's manifest digest it was read at. */
  source?: SourceRecord;
  /** publish_image: each arch's pushed image and the manifest list naming them (or why none). */
  published?: PublishedRecord;
  arches: Partial<Record<Arch, ArchState>>;
  /** VMs taken from pools for this build, so a killed run's leftovers are found (farm workers sweep). */
  pools?: PoolAllocationRecord[];
}

export interface PublishedRecord {
  /** The repository (REGISTRY/REPO). */
  repository: string;
  /** Per arch: the tag pushed from its worker and the manifest digest the registry holds. */
  arches: Partial<Record<Arch, { ref: string; digest: string }>>;
  list?: { ref: string; digest: string; mediaType: string; tags: string[] };
  /** Why no list was pushed (a failed arch without partial: true, or the push's error). */
  listError?: string;
}

/** One VM taken from a pool: recorded when taken, and again when given back. */
export interface PoolAllocationRecord {
  pool: string;
  provider: string;
  arch: Arch;
  /** The allocator's id (resalloc ticket, instance id). */
  id: string;
  /** The allocator's data for the VM (what release needs besides the id). */
  data: string;
  host?: string;
  /** Longest the VM may live (s); past it, a sweep gives it back. */
  lifetime_s: number;
  at: { requested: string; ready?: string; ssh?: string; released?: string };
  releaseError?: string;
  /** The coordinator process that took it (a sweep gives back VMs whose taker is gone). */
  owner?: { pid: number; host: string };
  /** 'sweep' when a later sweep gave it back. */
  releasedBy?: string;
}

export interface SourceRecord {
  image: string;
  digest: string;
  arches: Partial<Record<Arch, string>>;
}
