// What an interrupted S3 upload leaves (AWS s3-import staging, IBM COS staging): the object, and
// multipart uploads that were never completed or aborted (their parts are stored and billed until
// aborted). Both are found by the key alone, which the upload chose before it started.

import { AbortMultipartUploadCommand, DeleteObjectCommand, ListMultipartUploadsCommand, type S3Client } from '@aws-sdk/client-s3';

// A key has at most a few uploads (one per attempt); the bound stops a looping marker.
const MAX_PAGES = 20;

/** Aborts every multipart upload in progress for exactly `key`; returns how many it aborted. */
export async function abortMultipartUploads(s3: S3Client, bucket: string, key: string, signal?: AbortSignal): Promise<number> {
  let aborted = 0;
  let keyMarker: string | undefined;
  let uploadIdMarker: string | undefined;
  for (let page = 0; page < MAX_PAGES; page++) {
    const out = await s3.send(
      new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: key, KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker }),
      { abortSignal: signal },
    );
    for (const u of out.Uploads ?? []) {
      if (u.Key !== key || !u.UploadId) continue;
      try {
        await s3.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: u.UploadId }), { abortSignal: signal });
        aborted++;
      } catch (err) {
        if ((err as { name?: string }).name !== 'NoSuchUpload') throw err; // aborted or completed meanwhile
      }
    }
    if (!out.IsTruncated) return aborted;
    keyMarker = out.NextKeyMarker;
    uploadIdMarker = out.NextUploadIdMarker;
  }
  throw new Error(`listing the multipart uploads of s3://${bucket}/${key} did not end after ${MAX_PAGES} pages`);
}

/** Deletes the object; one that is not there counts as deleted (S3 answers 204 either way). */
export async function deleteObject(s3: S3Client, bucket: string, key: string, signal?: AbortSignal): Promise<void> {
  await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }), { abortSignal: signal });
}
