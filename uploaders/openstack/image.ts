// What farm tells Glance about an image: the file to send, disk and container format, visibility,
// min_disk and properties (architecture from the build, never from this host).

import { open } from 'node:fs/promises';
import { FarmError } from '../../src/core/errors.ts';
import type { OpenStackTarget } from './schema.ts';
import type { FarmIdentity } from '../lifecycle.ts';
import type { Artifact, ArtifactFile } from '../../src/core/artifact.ts';

/** Image attributes Glance keeps for itself or sets from arguments; not settable as properties. */
const CORE_ATTRIBUTES = new Set([
  'id', 'name', 'status', 'visibility', 'protected', 'os_hidden', 'checksum', 'os_hash_algo',
  'os_hash_value', 'owner', 'size', 'virtual_size', 'container_format', 'disk_format', 'created_at',
  'updated_at', 'tags', 'direct_url', 'min_ram', 'min_disk', 'self', 'file', 'schema', 'locations',
  'stores',
]);

/** Properties farm sets from the build itself. */
const FARM_PROPERTIES = new Set(['architecture', 'farm_build_id', 'farm_image_name', 'farm_attempt']);

/** Problems with target.properties, all at once (empty when fine). */
export function propertyProblems(properties: Record<string, string>): string[] {
  const problems: string[] = [];
  for (const key of Object.keys(properties)) {
    if (CORE_ATTRIBUTES.has(key)) problems.push(`"${key}" is a Glance image attribute, not a property`);
    else if (key.startsWith('os_glance')) problems.push(`"${key}" is reserved by Glance (os_glance*)`);
    else if (FARM_PROPERTIES.has(key)) problems.push(`"${key}" is set by farm from the build`);
  }
  return problems;
}

/** The artifact's disk if it is in the format the target takes; converting is the caller's job. */
export function diskFor(target: Pick<OpenStackTarget, 'image_type'>, artifact: Artifact, targetName: string): ArtifactFile {
  if (artifact.disk.format !== target.image_type) {
    throw new FarmError('UPLOAD', `${targetName} takes ${target.image_type} images but ${artifact.disk.name} is ${artifact.disk.format}`, {
      hint:
        target.image_type === 'raw'
          ? 'Build a raw (or ami) type for this arch, convert the qcow2 to raw before uploading, or set image_type: qcow2 on the target.'
          : 'Build a qcow2 type for this arch, or set image_type: raw on the target.',
    });
  }
  return artifact.disk;
}

const QCOW2_MAGIC = 0x514649fb; // "QFI\xfb"

/** The size a guest sees: a raw file's size, or a qcow2 header's virtual size. */
export async function virtualSize(file: ArtifactFile): Promise<number> {
  if (file.format !== 'qcow2') return file.size;
  const fh = await open(file.path, 'r');
  try {
    const header = Buffer.alloc(32);
    const { bytesRead } = await fh.read(header, 0, 32, 0);
    if (bytesRead < 32 || header.readUInt32BE(0) !== QCOW2_MAGIC) {
      throw new FarmError('UPLOAD', `${file.path} is not a qcow2 image (no qcow2 header)`);
    }
    return Number(header.readBigUInt64BE(24));
  } finally {
    await fh.close();
  }
}

const GIB = 1024 ** 3;

export interface ImageFieldsInput {
  target: OpenStackTarget;
  artifact: Artifact;
  imageName: string;
  /** UploadContext.tags: farm-build-id, farm-image-name, ... (dashes become underscores). */
  tags: Record<string, string>;
  virtualSize: number;
  /** The farm identity (lifecycle.ts), as farm_* properties; a candidate is private until released. */
  identity?: FarmIdentity;
}

/** The identity as Glance properties: farm_build_id, farm_arch, farm_name, farm_channel, farm_inventory. */
export function identityProperties(id: FarmIdentity): Record<string, string> {
  return { farm_build_id: id.buildId, farm_arch: id.arch, farm_name: id.name, farm_channel: id.channel, farm_inventory: id.inventory };
}

/** The body of POST /v2/images. */
export function imageFields(input: ImageFieldsInput): Record<string, unknown> {
  const { target, artifact } = input;
  const props: Record<string, string> = {};
  for (const [k, v] of Object.entries(input.tags)) props[k.replace(/-/g, '_')] = v;
  Object.assign(props, target.properties);
  if (target.os_distro) props.os_distro = target.os_distro;
  // Last, so nothing overrides what the build says.
  props.architecture = artifact.arch;
  props.farm_build_id = artifact.buildId;
  props.farm_image_name = input.imageName;
  if (input.identity) Object.assign(props, identityProperties(input.identity));
  for (const k of Object.keys(props)) if (CORE_ATTRIBUTES.has(k) || k.startsWith('os_glance')) delete props[k];
  return {
    name: input.imageName,
    disk_format: target.disk_format ?? target.image_type,
    container_format: 'bare',
    visibility: input.identity ? 'private' : target.visibility,
    min_disk: Math.max(1, Math.ceil(input.virtualSize / GIB)),
    ...props,
  };
}
