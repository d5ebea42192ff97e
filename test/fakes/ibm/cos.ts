// How the fake VPC reads Cloud Object Storage: through the S3 API of the lab's S3 server with its
// own credentials, the way the real image service reads COS under its IAM service authorization.

import { GetObjectCommand, HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';
import type { Readable } from 'node:stream';

export interface FakeCosOptions {
  endpoint: string;
  /** Signing region of the S3 server. */
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** COS regions a cos://<region>/... href may name; all are served by this one S3 server. */
  regions?: string[];
  /** Buckets the VPC service is authorized to read (default: all), like the VPC→COS IAM authorization. */
  authorizedBuckets?: string[];
}

export const DEFAULT_COS_REGIONS = [
  'us-south', 'us-east', 'eu-de', 'eu-gb', 'eu-es', 'jp-tok', 'jp-osa', 'au-syd', 'ca-tor', 'br-sao', 'us', 'eu', 'ap',
];

export interface CosObjectInfo {
  size: number;
  /** Multipart uploads have ETags ending in -<parts>. */
  etag: string;
  metadata: Record<string, string>;
}

export class FakeCosReader {
  readonly regions: Set<string>;
  private readonly client: S3Client;
  private readonly authorized: Set<string> | undefined;

  constructor(opts: FakeCosOptions) {
    this.regions = new Set(opts.regions ?? DEFAULT_COS_REGIONS);
    this.authorized = opts.authorizedBuckets ? new Set(opts.authorizedBuckets) : undefined;
    this.client = new S3Client({
      endpoint: opts.endpoint,
      region: opts.region,
      credentials: { accessKeyId: opts.accessKeyId, secretAccessKey: opts.secretAccessKey },
      forcePathStyle: true,
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      maxAttempts: 1,
    });
  }

  /** The object's size and metadata, or undefined when missing or not readable by the service. */
  async head(bucket: string, key: string): Promise<CosObjectInfo | undefined> {
    if (this.authorized && !this.authorized.has(bucket)) return undefined;
    try {
      const out = await this.client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
      return { size: out.ContentLength ?? 0, etag: (out.ETag ?? '').replaceAll('"', ''), metadata: out.Metadata ?? {} };
    } catch (err) {
      const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      if (status === 404 || status === 403) return undefined;
      throw err;
    }
  }

  async open(bucket: string, key: string): Promise<Readable> {
    const out = await this.client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    return out.Body as Readable;
  }

  destroy(): void {
    this.client.destroy();
  }
}
