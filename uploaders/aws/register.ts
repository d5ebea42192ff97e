// Turning a snapshot into AMIs: RegisterImage, copies to other regions, launch permissions,
// deprecation. Each function does one API step; the uploader orders them and undoes them.

import {
  CopyImageCommand,
  DeleteSnapshotCommand,
  DeregisterImageCommand,
  DescribeImagesCommand,
  EnableImageDeprecationCommand,
  ModifyImageAttributeCommand,
  RegisterImageCommand,
  waitUntilImageAvailable,
  type ArchitectureValues,
  type BootModeValues,
  type EC2Client,
  type Tag,
} from '@aws-sdk/client-ec2';
import type { WaitSettings } from './wait.ts';

/**
 * The root device. AWS accepts /dev/sda1 and /dev/xvda for HVM images; the name is only a label
 * for the mapping (Nitro instances expose NVMe regardless). image-builder and the bootc images
 * use /dev/sda1, so the farm does too.
 */
export const ROOT_DEVICE = '/dev/sda1';

export function toTags(tags: Record<string, string>): Tag[] {
  return Object.entries(tags).map(([Key, Value]) => ({ Key, Value }));
}

export interface RegisterParams {
  ec2: EC2Client;
  name: string;
  description: string;
  snapshotId: string;
  architecture: ArchitectureValues;
  bootMode: BootModeValues;
  imdsV2: boolean;
  tags: Record<string, string>;
  signal: AbortSignal;
}

export async function registerImage(p: RegisterParams): Promise<string> {
  const out = await p.ec2.send(
    new RegisterImageCommand({
      Name: p.name,
      Description: p.description,
      Architecture: p.architecture,
      VirtualizationType: 'hvm',
      BootMode: p.bootMode,
      EnaSupport: true,
      ...(p.imdsV2 ? { ImdsSupport: 'v2.0' as const } : {}),
      RootDeviceName: ROOT_DEVICE,
      BlockDeviceMappings: [
        { DeviceName: ROOT_DEVICE, Ebs: { SnapshotId: p.snapshotId, DeleteOnTermination: true, VolumeType: 'gp3' } },
      ],
      TagSpecifications: [{ ResourceType: 'image', Tags: toTags(p.tags) }],
    }),
    { abortSignal: p.signal },
  );
  if (!out.ImageId) throw new Error('RegisterImage answered no ImageId');
  return out.ImageId;
}

export async function waitAvailable(ec2: EC2Client, imageId: string, wait: WaitSettings, signal: AbortSignal): Promise<void> {
  await waitUntilImageAvailable(
    { client: ec2, abortSignal: signal, minDelay: wait.minDelaySeconds, maxDelay: wait.maxDelaySeconds, maxWaitTime: wait.maxWaitSeconds },
    { ImageIds: [imageId] },
  );
}

export async function copyImage(p: {
  ec2: EC2Client; // client of the destination region
  sourceRegion: string;
  sourceImageId: string;
  name: string;
  description: string;
  tags: Record<string, string>;
  clientToken: string;
  signal: AbortSignal;
}): Promise<string> {
  const out = await p.ec2.send(
    new CopyImageCommand({
      SourceRegion: p.sourceRegion,
      SourceImageId: p.sourceImageId,
      Name: p.name,
      Description: p.description,
      ClientToken: p.clientToken,
      TagSpecifications: [
        { ResourceType: 'image', Tags: toTags(p.tags) },
        { ResourceType: 'snapshot', Tags: toTags(p.tags) },
      ],
    }),
    { abortSignal: p.signal },
  );
  if (!out.ImageId) throw new Error('CopyImage answered no ImageId');
  return out.ImageId;
}

export async function shareImage(ec2: EC2Client, imageId: string, accounts: string[], signal: AbortSignal): Promise<void> {
  if (accounts.length === 0) return;
  await ec2.send(
    new ModifyImageAttributeCommand({ ImageId: imageId, LaunchPermission: { Add: accounts.map((UserId) => ({ UserId })) } }),
    { abortSignal: signal },
  );
}

export async function deprecateImage(ec2: EC2Client, imageId: string, at: Date, signal: AbortSignal): Promise<void> {
  await ec2.send(new EnableImageDeprecationCommand({ ImageId: imageId, DeprecateAt: at }), { abortSignal: signal });
}

/** Snapshot ids behind an image (empty when the image is gone). */
export async function imageSnapshots(ec2: EC2Client, imageId: string, signal: AbortSignal): Promise<string[] | undefined> {
  try {
    const out = await ec2.send(new DescribeImagesCommand({ ImageIds: [imageId] }), { abortSignal: signal });
    const img = out.Images?.[0];
    if (!img) return undefined;
    return (img.BlockDeviceMappings ?? []).map((b) => b.Ebs?.SnapshotId).filter((s): s is string => !!s);
  } catch (err) {
    if ((err as { name?: string }).name === 'InvalidAMIID.NotFound') return undefined;
    throw err;
  }
}

/** Deregisters an image and deletes its snapshots; a missing image or snapshot is not an error. */
export async function removeImage(ec2: EC2Client, imageId: string, signal: AbortSignal): Promise<void> {
  const snapshots = await imageSnapshots(ec2, imageId, signal);
  if (snapshots === undefined) return;
  await ec2.send(new DeregisterImageCommand({ ImageId: imageId }), { abortSignal: signal });
  for (const id of snapshots) await deleteSnapshot(ec2, id, signal);
}

export async function deleteSnapshot(ec2: EC2Client, snapshotId: string, signal: AbortSignal): Promise<void> {
  try {
    await ec2.send(new DeleteSnapshotCommand({ SnapshotId: snapshotId }), { abortSignal: signal });
  } catch (err) {
    if ((err as { name?: string }).name === 'InvalidSnapshot.NotFound') return;
    throw err;
  }
}
