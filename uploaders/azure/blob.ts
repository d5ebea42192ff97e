// The staging page blob: created at the VHD's size, then only the planned (non-zero) ranges are
// written with Put Page, a bounded pool of requests in flight, each retried by the SDK's storage
// retry policy. The blob carries the attempt token in its metadata, so a rerun finds it.

import { setMaxListeners } from 'node:events';
import { open } from 'node:fs/promises';
import type { TokenCredential } from '@azure/identity';
import { BlobServiceClient, type ContainerClient, type PageBlobClient } from '@azure/storage-blob';
import PQueue from 'p-queue';
import { FarmError, errorMessage, isAbortError } from '../../src/core/errors.ts';
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
  /** Awaited once the blob exists, before any page is written (the caller records it). */
  onCreated: () => Promise<void>;
  onProgress: (sent: number) => void;
}

/** Creates the page blob (refusing to replace one) and writes the ranges; returns bytes sent. */
export async function uploadSparse(p: SparseUploadParams): Promise<number> {
  await p.blob.create(p.size, { metadata: p.metadata, conditions: { ifNoneMatch: '*' }, abortSignal: p.signal });
  await p.onCreated();

  const stop = new AbortController();
  setMaxListeners(p.concurrency + 16, stop.signal);
  const onAbort = () => stop.abort(p.signal.reason);
  p.signal.addEventListener('abort', onAbort, { once: true });
  const failures: { range: PageRange; error: unknown }[] = [];
  const queue = new PQueue({ concurrency: p.concurrency });
  let sent = 0;
  const fh = await open(p.path, 'r');
  try {
    for (const range of p.ranges) {
      if (stop.signal.aborted) break;
      // Reads stay just ahead of the pool: memory is (concurrency + 2) x 4 MiB at most.
      await queue.onSizeLessThan(2);
      if (stop.signal.aborted) break;
      queue
        .add(async () => {
          if (stop.signal.aborted) return;
          const data = Buffer.allocUnsafe(range.length);
          const { bytesRead } = await fh.read(data, 0, range.length, range.offset);
          // The last page of a file that is not page-sized reads short: the rest is zeros.
          if (bytesRead < range.length) data.fill(0, bytesRead);
          await p.blob.uploadPages(data, range.offset, range.length, { abortSignal: stop.signal });
          sent += range.length;
          p.onProgress(sent);
        })
        .catch((error: unknown) => {
          // Requests cut off by the stop are casualties of the first failure, not failures.
          if (stop.signal.aborted && isAbortError(error)) return;
          failures.push({ range, error });
          stop.abort(error);
        });
    }
    await queue.onIdle();
  } finally {
    p.signal.removeEventListener('abort', onAbort);
    queue.clear();
    await fh.close();
  }
  if (p.signal.aborted) throw new FarmError('ABORTED', 'cancelled');
  if (failures.length > 0) {
    failures.sort((a, b) => a.range.offset - b.range.offset);
    const first = failures[0]!;
    throw new Error(`${failures.length} Put Page request(s) failed after retries (first: bytes ${first.range.offset}+${first.range.length}: ${errorMessage(first.error)})`, {
      cause: first.error,
    });
  }
  return sent;
}

/** Deletes the blob if it is there; true when it was. */
export async function removeBlob(blob: PageBlobClient, signal: AbortSignal): Promise<boolean> {
  const out = await blob.deleteIfExists({ deleteSnapshots: 'include', abortSignal: signal });
  return out.succeeded;
}
