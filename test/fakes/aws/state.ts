// The fake's account state, per region: snapshots (block data in sparse files on disk), images
// and import tasks. Time-driven transitions (pending -> completed/available) are applied lazily
// whenever state is read.

import { randomBytes } from 'node:crypto';

export const ACCOUNT_ID = '123456789012';
export const BLOCK_SIZE = 524_288;
export const GIB = 1024 ** 3;

/** An error answered with AWS's code, HTTP status and (EBS) reason. */
export class AwsFault extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status = 400,
    readonly reason?: string,
  ) {
    super(message);
  }
}

export function newId(prefix: string): string {
  // Real ids carry 17 hex digits after the prefix.
  return `${prefix}-0${randomBytes(8).toString('hex')}`;
}

export type Tags = Map<string, string>;

export interface Snapshot {
  id: string;
  region: string;
  state: 'pending' | 'completed' | 'error';
  volumeSize: number; // GiB
  description: string;
  tags: Tags;
  startTime: Date;
  origin: 'ebs-direct' | 'import' | 'copy';
  /** Sparse file holding the volume's bytes (shared by copies: completed data never changes). */
  dataPath: string;
  /** EBS direct: raw SHA256 of each written block. */
  blockDigests: Map<number, Buffer>;
  clientToken?: string;
  startRequestKey?: string;
  timeoutMinutes: number;
  /** When CompleteSnapshot was accepted; the snapshot turns completed after the fake's delay. */
  completeAt?: number;
  bytesReceived: number;
  putRequests: number;
}

export interface BlockDeviceMapping {
  deviceName: string;
  snapshotId?: string;
  volumeSize?: number;
  volumeType: string;
  deleteOnTermination: boolean;
  encrypted: boolean;
}

export interface Image {
  id: string;
  region: string;
  name: string;
  description?: string;
  architecture: string;
  rootDeviceName: string;
  virtualizationType: string;
  bootMode?: string;
  enaSupport: boolean;
  imdsSupport?: string;
  sriovNetSupport?: string;
  blockDeviceMappings: BlockDeviceMapping[];
  state: 'pending' | 'available' | 'failed';
  availableAt: number;
  creationDate: Date;
  tags: Tags;
  launchPermissions: Set<string>;
  deprecationTime?: Date;
  /** When an instance last launched from it (EC2 reports it about a day late; the lab sets it). */
  lastLaunchedTime?: Date;
  sourceImageId?: string;
  sourceRegion?: string;
}

export interface ImportTask {
  id: string;
  region: string;
  description: string;
  bucket: string;
  key: string;
  format: string;
  status: 'active' | 'completed' | 'deleting' | 'deleted';
  statusMessage?: string;
  progress?: string;
  polls: number;
  tags: Tags;
  /** Outcome of reading the object from S3, once finished. */
  read?: { ok: true; bytes: number } | { ok: false; message: string };
  snapshotId?: string;
  diskImageSize?: number;
}

export interface Region {
  name: string;
  snapshots: Map<string, Snapshot>;
  images: Map<string, Image>;
  importTasks: Map<string, ImportTask>;
  /** CopyImage ClientToken -> image id. */
  copyTokens: Map<string, string>;
}

export interface Timing {
  snapshotCompleteMs: number;
  imageAvailableMs: number;
  /** DescribeImportSnapshotTasks calls a task stays active before it completes. */
  importPolls: number;
}

export class FakeState {
  readonly regions = new Map<string, Region>();

  constructor(
    regionNames: readonly string[],
    readonly timing: Timing,
  ) {
    for (const name of regionNames) {
      this.regions.set(name, { name, snapshots: new Map(), images: new Map(), importTasks: new Map(), copyTokens: new Map() });
    }
  }

  region(name: string): Region | undefined {
    const r = this.regions.get(name);
    if (r) this.tick(r);
    return r;
  }

  /** Applies due time-driven transitions. */
  tick(r: Region, now = Date.now()): void {
    for (const s of r.snapshots.values()) {
      if (s.state === 'pending' && s.completeAt !== undefined && now >= s.completeAt) s.state = 'completed';
    }
    for (const img of r.images.values()) {
      if (img.state === 'pending' && now >= img.availableAt) img.state = 'available';
    }
  }

  findSnapshot(id: string): Snapshot | undefined {
    for (const r of this.regions.values()) {
      this.tick(r);
      const s = r.snapshots.get(id);
      if (s) return s;
    }
    return undefined;
  }
}

export function tagList(tags: Tags): Array<{ key: string; value: string }> {
  return [...tags].map(([key, value]) => ({ key, value }));
}

const MAX_TAGS = 50;

/** Validates tags as EC2 does and merges them into `into`. */
export function applyTags(into: Tags, tags: Array<{ key: string | undefined; value: string | undefined }>): void {
  const seen = new Set<string>();
  for (const { key, value } of tags) {
    if (key === undefined || key === '') throw new AwsFault('InvalidParameterValue', 'Tag key cannot be empty');
    if (key.length > 128) throw new AwsFault('InvalidParameterValue', `Tag key exceeds the maximum length of 128 characters: ${key.slice(0, 20)}...`);
    if ((value ?? '').length > 256) throw new AwsFault('InvalidParameterValue', `Tag value exceeds the maximum length of 256 characters for key '${key}'`);
    if (key.toLowerCase().startsWith('aws:')) throw new AwsFault('InvalidParameterValue', "Tag keys starting with 'aws:' are reserved for internal use");
    if (seen.has(key)) throw new AwsFault('InvalidParameterValue', `Duplicate tag key '${key}' specified.`);
    seen.add(key);
  }
  const merged = new Map(into);
  for (const { key, value } of tags) merged.set(key!, value ?? '');
  if (merged.size > MAX_TAGS) throw new AwsFault('TagLimitExceeded', `The maximum number of tags per resource is ${MAX_TAGS}`);
  for (const [k, v] of merged) into.set(k, v);
}
