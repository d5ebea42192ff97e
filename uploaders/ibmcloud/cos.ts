// Cloud Object Storage through its S3-compatible API, with HMAC keys or IAM bearer tokens: the
// staging object VPC imports from. The qcow2 is streamed from disk in parallel multipart parts (lib-storage), never
// read into memory whole.

import { createReadStream } from 'node:fs';
import { DeleteObjectCommand, HeadBucketCommand, S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import type { IamAuthenticator } from 'ibm-cloud-sdk-core';

/** Parts in flight; memory use is at most PARTS_IN_FLIGHT × part size. */
const PARTS_IN_FLIGHT = 4;
const MIN_PART = 16 * 1024 * 1024;
/** S3 allows 10,000 parts; stay below it with room to spare. */
const MAX_PARTS = 9000;

/** S3's smallest part (all but the last). */
export const S3_MIN_PART = 5 * 1024 * 1024;

export function partSizeFor(size: number, minPart = MIN_PART): number {
  return Math.max(S3_MIN_PART, minPart, Math.ceil(size / MAX_PARTS));
}

/** HMAC keys (SigV4, as the AWS SDK signs) or IAM bearer tokens from the authenticator. */
export type CosAuth = { hmac: { accessKeyId: string; secretAccessKey: string } } | { iam: Pick<IamAuthenticator, 'authenticate'> };

export function createCosClient(opts: { endpoint: string; region: string; auth: CosAuth }): S3Client {
  const auth = opts.auth;
  const config: S3ClientConfig = {
    endpoint: opts.endpoint,
    region: opts.region,
    ...('hmac' in auth
      ? { credentials: auth.hmac }
      : {
          // COS's S3 API takes "Authorization: Bearer <IAM token>" in place of a signature. The
          // SDK resolves an identity before it calls the signer; this one is never used.
          credentials: { accessKeyId: 'iam', secretAccessKey: 'iam' },
          signer: {
            sign: async (request) => {
              const withToken: { headers: Record<string, string> } = { headers: {} };
              await auth.iam.authenticate(withToken); // cached by the SDK core until near expiry
              request.headers.authorization = withToken.headers.Authorization ?? '';
              return request;
            },
          },
        }),
    // COS serves path-style everywhere; virtual-host style needs DNS per bucket.
    forcePathStyle: true,
    // COS does not take the flexible checksums / aws-chunked bodies newer SDKs send by default.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  };
  return new S3Client(config);
}

export async function uploadFile(
  client: S3Client,
  params: { bucket: string; key: string; file: string; size: number; metadata: Record<string, string>; minPartSize?: number },
  signal: AbortSignal,
  onProgress: (sent: number) => void,
): Promise<void> {
  const controller = new AbortController();
  const forward = () => controller.abort();
  signal.addEventListener('abort', forward, { once: true });
  try {
    const upload = new Upload({
      client,
      params: {
        Bucket: params.bucket,
        Key: params.key,
        Body: createReadStream(params.file),
        ContentType: 'application/octet-stream',
        Metadata: params.metadata,
      },
      queueSize: PARTS_IN_FLIGHT,
      partSize: partSizeFor(params.size, params.minPartSize),
      // On failure, abort the multipart upload so no billed parts are left behind.
      leavePartsOnError: false,
      abortController: controller,
    });
    upload.on('httpUploadProgress', (p) => {
      if (typeof p.loaded === 'number') onProgress(p.loaded);
    });
    if (signal.aborted) controller.abort();
    await upload.done();
  } finally {
    signal.removeEventListener('abort', forward);
  }
}

export async function deleteObject(client: S3Client, bucket: string, key: string, signal?: AbortSignal): Promise<void> {
  await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }), { abortSignal: signal });
}

export async function headBucket(client: S3Client, bucket: string, signal?: AbortSignal): Promise<void> {
  await client.send(new HeadBucketCommand({ Bucket: bucket }), { abortSignal: signal });
}

/** S3 metadata keys travel as x-amz-meta-* headers: keep to token characters and ASCII values. */
export function objectMetadata(tags: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(tags)) {
    const key = k.toLowerCase().replace(/[^a-z0-9-]/g, '-');
    if (key) out[key] = v.replace(/[^\x20-\x7e]/g, '?');
  }
  return out;
}
