// The staging page blob: created at the VHD's size, then only the planned (non-zero) ranges are
// written with Put Page, a bounded pool of requests in flight, each retried by the SDK's storage
// retry policy. The blob carries the attempt token in its metadata, so a rerun finds it.

import { open } from 'node:fs/promises';
import type { TokenCredential } from '@azure/identity';
import { BlobServiceClient, type ContainerClient, type PageBlobClient } from '@azure/storage-blob';
import { sendParallel } from '../toolkit/parallel.ts';
import type { PageRange } from './pages.ts';

// Requests in flight: Put Page of up to 4 MiB each; 8 keep a page blob busy (a single blob takes
// about 60 MiB/s of writes) while bounding memory at 32 MiB.
export const DEFAULT_CONCURRENCY = 8;
// Attempts per request including the first, with the storage retry policy's exponential backoff.
const MAX_TRIES = 6;

export interface BlobSettings {
  endpoint: string;
  container: string;
  credential: TokenCredential;
}

export function containerClient(s: BlobSettings): ContainerClient {
  const service = new BlobServiceClient(s.endpoint, s.credential, { retryOptions: { maxTries: MAX_TRIES } });
  return service.getContainerClient(s.container);
}

/** Metadata names are C# identifiers: farm-attempt becomes farm_attempt. */
export function blobMetadata(tags: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(tags).map(([k, v]) => [k.replace(/[^A-Za-z0-9_]/g, '_'), v]));
}

export interface SparseUploadParams {
  blob: PageBlobClient;
  path: string;
  /** The VHD's size: the page blob's size. */
  size: number;
  ranges: readonly PageRange[];
  metadata: Record<string, string>;
  concurrency: number;
  signal: AbortSignal;
  onProgress: (sent: number) => void;
}

/** Creates the page blob (refusing to replace one) and writes the ranges; returns bytes sent. */
export async function uploadSparse(p: SparseUploadParams): Promise<number> {
  await p.blob.create(p.size, { metadata: p.metadata, conditions: { ifNoneMatch: '*' }, abortSignal: p.signal });

  let sent = 0;
  const fh = await open(p.path, 'r');
  try {
    await sendParallel({
      items: p.ranges,
      // Reads happen in the requests, just ahead of the pool: memory is (concurrency + 2) x 4 MiB at most.
      readAhead: 2,
      concurrency: p.concurrency,
      signal: p.signal,
      send: async (range, signal) => {
        const data = Buffer.allocUnsafe(range.length);
        const { bytesRead } = await fh.read(data, 0, range.length, range.offset);
        // The last page of a file that is not page-sized reads short: the rest is zeros.
        if (bytesRead < range.length) data.fill(0, bytesRead);
        await p.blob.uploadPages(data, range.offset, range.length, { abortSignal: signal });
        sent += range.length;
        p.onProgress(sent);
      },
      position: (range) => range.offset,
      describe: (range) => `bytes ${range.offset}+${range.length}`,
      requests: 'Put Page request(s)',
    });
  } finally {
    await fh.close();
  }
  return sent;
}

/** Deletes the blob if it is there; true when it was. */
export async function removeBlob(blob: PageBlobClient, signal: AbortSignal): Promise<boolean> {
  const out = await blob.deleteIfExists({ deleteSnapshots: 'include', abortSignal: signal });
  return out.succeeded;
}
