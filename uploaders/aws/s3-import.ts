// Upload a raw disk through S3 and the VM Import service: multipart upload of the file
// (lib-storage, parts in parallel), ImportSnapshot from the bucket, poll the import task until it
// completes, and delete the object afterwards whatever happened.

import { randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { DeleteObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import {
  CancelImportTaskCommand,
  DescribeImportSnapshotTasksCommand,
  ImportSnapshotCommand,
  type EC2Client,
} from '@aws-sdk/client-ec2';
import { Upload } from '@aws-sdk/lib-storage';
import { pollUntil } from '../../src/core/poll.ts';
import { EBS_SNAPSHOT, IMPORT_TASK, S3_MULTIPART, S3_OBJECT, type Track } from './leftovers.ts';
import { toTags } from './register.ts';
import { pollSettings, type WaitSettings } from './wait.ts';

// S3 allows at most 10,000 parts per upload.
const MAX_PARTS = 10_000;

export interface S3ImportParams {
  s3: S3Client;
  ec2: EC2Client;
  bucket: string;
  key: string;
  path: string;
  size: number;
  description: string;
  partSize: number;
  queueSize: number;
  signal: AbortSignal;
  wait: WaitSettings;
  log: (message: string) => void;
  /** The EC2 client's region (where the import task and snapshot are). */
  region: string;
  /** Put on the import task. */
  tags: Record<string, string>;
  /** Records each object (object, multipart upload, import task, snapshot) before it is made,
   *  with its undo: the caller's journal and rollback. */
  track: Track;
  onProgress: (done: number, sent: number, phase: string) => void;
}

export function partSizeFor(size: number, preferred: number): number {
  const minimum = Math.ceil(size / MAX_PARTS);
  return Math.max(preferred, minimum, 5 * 1024 * 1024);
}

/** Uploads the file to s3://bucket/key with parallel parts; aborts the multipart upload on failure. */
export async function uploadObject(p: Pick<S3ImportParams, 's3' | 'bucket' | 'key' | 'path' | 'size' | 'partSize' | 'queueSize' | 'signal' | 'onProgress'>): Promise<void> {
  const abortController = new AbortController();
  const onAbort = () => abortController.abort();
  p.signal.addEventListener('abort', onAbort, { once: true });
  try {
    const upload = new Upload({
      client: p.s3,
      params: { Bucket: p.bucket, Key: p.key, Body: createReadStream(p.path), ContentLength: p.size },
      partSize: partSizeFor(p.size, p.partSize),
      queueSize: p.queueSize,
      leavePartsOnError: false,
      abortController,
    });
    upload.on('httpUploadProgress', (e) => {
      if (e.loaded !== undefined) p.onProgress(e.loaded, e.loaded, 'upload');
    });
    await upload.done();
  } finally {
    p.signal.removeEventListener('abort', onAbort);
  }
}

export async function importSnapshot(p: S3ImportParams): Promise<string> {
  const deleteObject = (signal: AbortSignal) =>
    p.s3.send(new DeleteObjectCommand({ Bucket: p.bucket, Key: p.key }), { abortSignal: signal }).then(() => undefined);
  // Recorded before the upload starts: lib-storage starts a multipart upload for all but small
  // files, and a run killed before it completes or aborts leaves the parts behind.
  const object = await p.track({ kind: S3_OBJECT, location: p.bucket, name: p.key });
  const multipart = await p.track({ kind: S3_MULTIPART, location: p.bucket, name: p.key });
  try {
    await uploadObject(p);
    await multipart.settle(); // completed: no upload of the key is in progress any more
    p.onProgress(p.size, p.size, 'import');
    const task = await p.track({ kind: IMPORT_TASK, location: p.region, name: p.key });
    const started = await p.ec2.send(
      new ImportSnapshotCommand({
        Description: p.description,
        DiskContainer: { Description: p.description, Format: 'RAW', UserBucket: { S3Bucket: p.bucket, S3Key: p.key } },
        ClientToken: randomUUID(),
        TagSpecifications: [{ ResourceType: 'import-snapshot-task', Tags: toTags(p.tags) }],
      }),
      { abortSignal: p.signal },
    );
    const taskId = started.ImportTaskId;
    if (!taskId) throw new Error('ImportSnapshot answered no ImportTaskId');
    await task.identify(taskId);
    const snapshotId = await pollImport(p, taskId);
    // The snapshot is recorded on its own before the task's record goes (which would find it too).
    const snapshot = await p.track({ kind: EBS_SNAPSHOT, location: p.region, name: p.key });
    await snapshot.identify(snapshotId);
    await task.settle();
    return snapshotId;
  } finally {
    // Delete the object now rather than at rollback: it is only needed by the import.
    try {
      await deleteObject(AbortSignal.timeout(60_000));
      await object.settle();
    } catch (err) {
      p.log(`could not delete s3://${p.bucket}/${p.key} yet: ${(err as Error).message}`);
    }
  }
}

/** Polls DescribeImportSnapshotTasks with backoff until completed; fails on deleted/error states. */
function pollImport(p: S3ImportParams, taskId: string): Promise<string> {
  return pollUntil(
    async (status) => {
      const out = await p.ec2.send(new DescribeImportSnapshotTasksCommand({ ImportTaskIds: [taskId] }), { abortSignal: p.signal });
      const task = out.ImportSnapshotTasks?.find((t) => t.ImportTaskId === taskId);
      const detail = task?.SnapshotTaskDetail;
      const state = detail?.Status ?? 'unknown';
      if (state === 'completed') {
        if (!detail?.SnapshotId) throw new Error(`import task ${taskId} completed without a snapshot id`);
        return detail.SnapshotId;
      }
      if (state !== 'active') {
        throw new Error(`import task ${taskId} ended ${state}: ${detail?.StatusMessage ?? 'no status message'}`);
      }
      status(`${detail?.StatusMessage ?? ''} ${detail?.Progress ?? ''}%`.trim());
      return undefined;
    },
    {
      what: `import task ${taskId} to complete`,
      ...pollSettings(p.wait),
      signal: p.signal,
      onProgress: (line) => p.log(`import ${taskId}: ${line}`),
    },
  );
}
