// libvirt has no tags: each image volume the farm publishes gets a farm-owned metadata volume
// beside it in the same pool, `<image volume>.farm.json`, holding its identity (lifecycle.ts) and
// its channel and current mark. One small volume per image, not one file per pool: parallel
// uploads of two arches to one pool never read-modify-write a shared file, and removing an
// image removes exactly its own metadata. The JSON is padded with spaces to a fixed size so a
// rewrite (release) overwrites it in place: there is no moment without metadata.

import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FarmError } from '../../src/core/errors.ts';
import type { Channel, FarmIdentity } from '../lifecycle.ts';
import type { HypervisorClient } from './hypervisor.ts';

export const METADATA_SUFFIX = '.farm.json';
const METADATA_BYTES = 4096;

export interface VolumeMetadata extends FarmIdentity {
  /** The image volume it describes. */
  volume: string;
  createdAt: string;
  current?: boolean;
  permanent?: boolean;
  deprecatedAt?: string;
}

export function metadataVolume(imageVolume: string): string {
  return `${imageVolume}${METADATA_SUFFIX}`;
}

async function withTemp<T>(fn: (file: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'farm-libvirt-meta-'));
  try {
    return await fn(join(dir, 'meta.json'));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Writes (or rewrites in place) the metadata volume of an image volume. */
export async function writeMetadata(c: HypervisorClient, meta: VolumeMetadata, signal: AbortSignal): Promise<void> {
  const name = metadataVolume(meta.volume);
  const text = JSON.stringify(meta);
  if (Buffer.byteLength(text) > METADATA_BYTES) throw new FarmError('UPLOAD', `the farm metadata of ${meta.volume} exceeds ${METADATA_BYTES} bytes`);
  await withTemp(async (file) => {
    await writeFile(file, text.padEnd(METADATA_BYTES, ' '));
    if (!(await c.lookup(name, signal))) await c.create(name, 'raw', signal);
    await c.uploadSmall(name, file, signal);
  });
}

/** Reads a metadata volume; undefined when it is gone or not the farm's JSON. */
export async function readMetadata(c: HypervisorClient, name: string, signal: AbortSignal): Promise<VolumeMetadata | undefined> {
  return withTemp(async (file) => {
    if (!(await c.download(name, file, signal))) return undefined;
    try {
      const meta = JSON.parse(await readFile(file, 'utf8')) as Partial<VolumeMetadata>;
      if (typeof meta.buildId !== 'string' || typeof meta.volume !== 'string' || typeof meta.inventory !== 'string') return undefined;
      return { ...meta, channel: (meta.channel === 'released' ? 'released' : 'candidate') as Channel } as VolumeMetadata;
    } catch {
      return undefined;
    }
  });
}
