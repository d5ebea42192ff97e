// Upload a raw disk as an EBS snapshot through the EBS direct APIs: StartSnapshot, PutSnapshotBlock
// for every non-zero 512 KiB block (a bounded pool of requests in flight, each retried by the SDK),
// CompleteSnapshot with the LINEAR aggregate checksum, then wait for `completed`.

import { randomUUID } from 'node:crypto';
import { open } from 'node:fs/promises';
import {
  CompleteSnapshotCommand,
  PutSnapshotBlockCommand,
  StartSnapshotCommand,
  type EBSClient,
} from '@aws-sdk/client-ebs';
import { waitUntilSnapshotCompleted, type EC2Client } from '@aws-sdk/client-ec2';
import { sendParallel } from '../toolkit/parallel.ts';
import { BLOCK_SIZE, linearChecksum, readBlocks, sha256, volumeSizeGiB } from './blocks.ts';
import type { WaitSettings } from './wait.ts';

// EBS direct snapshots not completed within this many minutes go to `error` on the AWS side, so
// an abandoned upload cleans itself up.
const SNAPSHOT_TIMEOUT_MINUTES = 60;
// Blocks read ahead of the pool: enough to keep it fed, few enough to bound memory
// ((concurrency + READ_AHEAD) x 512 KiB).
const READ_AHEAD = 16;

export interface EbsDirectParams {
  ebs: EBSClient;
  ec2: EC2Client;
  path: string;
  size: number;
  description: string;
  tags: Record<string, string>;
  concurrency: number;
  signal: AbortSignal;
  wait: WaitSettings;
  /** Called (and awaited) as soon as the snapshot exists, so the caller can record and undo it. */
  onSnapshot: (snapshotId: string) => void | Promise<void>;
  onProgress: (done: number, sent: number, phase: string) => void;
}

export interface EbsDirectResult {
  snapshotId: string;
  blocksSent: number;
  bytesSent: number;
  volumeSize: number;
}

export async function uploadEbsDirect(p: EbsDirectParams): Promise<EbsDirectResult> {
  const volumeSize = volumeSizeGiB(p.size);
  const started = await p.ebs.send(
    new StartSnapshotCommand({
      VolumeSize: volumeSize,
      Description: p.description,
      Tags: Object.entries(p.tags).map(([Key, Value]) => ({ Key, Value })),
      Timeout: SNAPSHOT_TIMEOUT_MINUTES,
      ClientToken: randomUUID(),
    }),
    { abortSignal: p.signal },
  );
  const snapshotId = started.SnapshotId;
  if (!snapshotId) throw new Error('StartSnapshot answered no SnapshotId');
  await p.onSnapshot(snapshotId);
  if (started.BlockSize !== undefined && started.BlockSize !== BLOCK_SIZE) {
    throw new Error(`StartSnapshot answered BlockSize ${started.BlockSize}, expected ${BLOCK_SIZE}`);
  }

  const digests = new Map<number, Buffer>();
  let done = 0;
  let sent = 0;
  const putBlock = async (index: number, data: Buffer, length: number, signal: AbortSignal) => {
    const digest = sha256(data);
    const command = new PutSnapshotBlockCommand({
      SnapshotId: snapshotId,
      BlockIndex: index,
      BlockData: data,
      DataLength: data.length,
      Checksum: digest.toString('base64'),
      ChecksumAlgorithm: 'SHA256',
    });
    // Sign the block's SHA256 (already computed for x-amz-Checksum) as the payload hash instead of
    // letting the signer hash 512 KiB again.
    command.middlewareStack.add(
      (next) => async (args) => {
        const req = args.request as { headers?: Record<string, string> };
        if (req.headers) req.headers['x-amz-content-sha256'] = digest.toString('hex');
        return next(args);
      },
      { step: 'build', name: 'farmBlockPayloadHash' },
    );
    await p.ebs.send(command, { abortSignal: signal });
    digests.set(index, digest);
    done += length;
    sent += data.length;
    p.onProgress(done, sent, 'upload');
  };

  const fh = await open(p.path, 'r');
  // Holes are counted as they are read; only blocks with data are sent.
  async function* dataBlocks() {
    for await (const block of readBlocks(fh, p.size)) {
      if (block.data) yield { index: block.index, data: block.data, length: block.length };
      else {
        done += block.length;
        p.onProgress(done, sent, 'upload');
      }
    }
  }
  try {
    await sendParallel({
      items: dataBlocks(),
      send: (b, signal) => putBlock(b.index, b.data, b.length, signal),
      concurrency: p.concurrency,
      readAhead: READ_AHEAD,
      signal: p.signal,
      position: (b) => b.index,
      describe: (b) => `block ${b.index}`,
      requests: 'block(s)',
    });
  } finally {
    await fh.close();
  }

  p.onProgress(done, sent, 'complete');
  await p.ebs.send(
    new CompleteSnapshotCommand({
      SnapshotId: snapshotId,
      ChangedBlocksCount: digests.size,
      Checksum: linearChecksum(digests),
      ChecksumAlgorithm: 'SHA256',
      ChecksumAggregationMethod: 'LINEAR',
    }),
    { abortSignal: p.signal },
  );
  await waitUntilSnapshotCompleted(
    { client: p.ec2, abortSignal: p.signal, minDelay: p.wait.minDelaySeconds, maxDelay: p.wait.maxDelaySeconds, maxWaitTime: p.wait.maxWaitSeconds },
    { SnapshotIds: [snapshotId] },
  );
  return { snapshotId, blocksSent: digests.size, bytesSent: sent, volumeSize };
}
