// What an AWS upload creates, removed by what the journal recorded of it: each object by its id
// when known, else by the attempt's farm-attempt tag (AMIs, snapshots), its S3 key (the staging
// object, multipart uploads, the import task reading it). Used both for the uploader's own
// rollback and for a rerun after a killed run. An attempt whose AMIs are available in every
// region is complete: its AMIs and snapshots stay for find(); anything else of an unfinished
// attempt goes, available AMIs included (a partial set of regions is no published image).

import {
  CancelImportTaskCommand,
  DeleteSnapshotCommand,
  DescribeImagesCommand,
  DescribeImportSnapshotTasksCommand,
  DescribeSnapshotsCommand,
  type EC2Client,
  type Image,
} from '@aws-sdk/client-ec2';
import type { S3Client } from '@aws-sdk/client-s3';
import { errorMessage } from '../../src/core/errors.ts';
import type { HalfMade, HalfMadeResult } from '../uploader.ts';
import { abortMultipartUploads, deleteObject } from '../s3-leftovers.ts';
import { deleteSnapshot, removeImage } from './register.ts';

export const AMI = 'ami';
export const EBS_SNAPSHOT = 'ebs-snapshot';
export const IMPORT_TASK = 'import-task';
export const S3_OBJECT = 's3-object';
export const S3_MULTIPART = 's3-multipart';
export const ATTEMPT_TAG = 'farm-attempt';

export interface AwsAccess {
  ec2(region: string): EC2Client;
  s3(): S3Client;
}

/** An object the upload recorded: its id once known, and done when it is gone or finished. */
export interface Tracked {
  identify(id: string): Promise<void>;
  /** No longer there to remove (deleted, or consumed like a completed multipart upload). */
  settle(): Promise<void>;
}

export type Track = (o: Omit<HalfMade, 'attempt'>) => Promise<Tracked>;

const notFound = (err: unknown, code: string) => (err as { name?: string }).name === code;

/** The AMIs an AMI record stands for: by id, else by name and attempt tag. */
async function amisOf(ec2: EC2Client, o: HalfMade, signal: AbortSignal): Promise<Image[]> {
  try {
    const filters = o.id ? [] : [{ Name: 'name', Values: [o.name] }, { Name: `tag:${ATTEMPT_TAG}`, Values: [o.attempt] }];
    const out = await ec2.send(new DescribeImagesCommand({ Owners: ['self'], ...(o.id ? { ImageIds: [o.id] } : { Filters: filters }) }), {
      abortSignal: signal,
    });
    return out.Images ?? [];
  } catch (err) {
    if (notFound(err, 'InvalidAMIID.NotFound')) return [];
    throw err;
  }
}

async function snapshotsOf(ec2: EC2Client, o: HalfMade, signal: AbortSignal): Promise<string[]> {
  if (o.id) return [o.id];
  const out = await ec2.send(
    new DescribeSnapshotsCommand({ OwnerIds: ['self'], Filters: [{ Name: `tag:${ATTEMPT_TAG}`, Values: [o.attempt] }] }),
    { abortSignal: signal },
  );
  return (out.Snapshots ?? []).map((s) => s.SnapshotId).filter((id): id is string => !!id);
}

/** Removes one recorded object; 'gone' when there was nothing (left) to remove. */
export async function removeAwsObject(aws: AwsAccess, o: HalfMade, signal: AbortSignal): Promise<'removed' | 'gone'> {
  switch (o.kind) {
    case AMI: {
      const ec2 = aws.ec2(o.location);
      const images = await amisOf(ec2, o, signal);
      for (const img of images) if (img.ImageId) await removeImage(ec2, img.ImageId, signal);
      return images.length ? 'removed' : 'gone';
    }
    case EBS_SNAPSHOT: {
      const ec2 = aws.ec2(o.location);
      let removed = false;
      for (const id of await snapshotsOf(ec2, o, signal)) {
        try {
          await ec2.send(new DeleteSnapshotCommand({ SnapshotId: id }), { abortSignal: signal });
          removed = true;
        } catch (err) {
          if (!notFound(err, 'InvalidSnapshot.NotFound')) throw err;
        }
      }
      return removed ? 'removed' : 'gone';
    }
    case IMPORT_TASK: {
      const ec2 = aws.ec2(o.location);
      const out = await ec2.send(new DescribeImportSnapshotTasksCommand(o.id ? { ImportTaskIds: [o.id] } : {}), { abortSignal: signal });
      const tasks = (out.ImportSnapshotTasks ?? []).filter((t) => (o.id ? t.ImportTaskId === o.id : t.SnapshotTaskDetail?.UserBucket?.S3Key === o.name));
      let removed = false;
      for (const t of tasks) {
        const detail = t.SnapshotTaskDetail;
        if (detail?.Status === 'active' && t.ImportTaskId) {
          await ec2.send(new CancelImportTaskCommand({ ImportTaskId: t.ImportTaskId, CancelReason: 'farm: left by an interrupted upload' }), {
            abortSignal: signal,
          });
          removed = true;
        } else if (detail?.Status === 'completed' && detail.SnapshotId) {
          await deleteSnapshot(ec2, detail.SnapshotId, signal);
          removed = true;
        }
      }
      return removed ? 'removed' : 'gone';
    }
    case S3_MULTIPART:
      return (await abortMultipartUploads(aws.s3(), o.location, o.name, signal)) > 0 ? 'removed' : 'gone';
    case S3_OBJECT:
      await deleteObject(aws.s3(), o.location, o.name, signal);
      return 'removed';
    default:
      throw new Error(`not an object the aws uploader makes (${o.kind})`);
  }
}

// AMIs before the snapshots behind them, tasks before the object they read.
const ORDER = [AMI, IMPORT_TASK, EBS_SNAPSHOT, S3_MULTIPART, S3_OBJECT];

/** Whether `attempt` published its image: an available AMI of it in every region. */
async function attemptComplete(aws: AwsAccess, objects: readonly HalfMade[], regions: readonly string[], signal: AbortSignal): Promise<boolean> {
  for (const region of regions) {
    const amis = objects.filter((o) => o.kind === AMI && o.location === region);
    if (amis.length === 0) return false;
    const found = (await Promise.all(amis.map((o) => amisOf(aws.ec2(region), o, signal)))).flat();
    if (!found.some((img) => img.State === 'available')) return false;
  }
  return true;
}

/** The rerun's cleanup: one result per object, in the order given. */
export async function removeAwsLeftovers(
  aws: AwsAccess,
  regions: readonly string[],
  objects: readonly HalfMade[],
  signal: AbortSignal,
): Promise<HalfMadeResult[]> {
  const results = new Map<HalfMade, HalfMadeResult>();
  for (const attempt of new Set(objects.map((o) => o.attempt))) {
    const mine = objects.filter((o) => o.attempt === attempt);
    let complete = false;
    try {
      complete = await attemptComplete(aws, mine, regions, signal);
    } catch (err) {
      for (const o of mine) results.set(o, { object: o, error: errorMessage(err) });
      continue;
    }
    const sorted = [...mine].sort((a, b) => ORDER.indexOf(a.kind) - ORDER.indexOf(b.kind));
    for (const o of sorted) {
      if (complete && o.kind !== S3_MULTIPART && o.kind !== S3_OBJECT) {
        results.set(o, { object: o, outcome: 'complete' });
        continue;
      }
      try {
        results.set(o, { object: o, outcome: await removeAwsObject(aws, o, signal) });
      } catch (err) {
        results.set(o, { object: o, error: errorMessage(err) });
      }
    }
  }
  return objects.map((o) => results.get(o)!);
}
