// Receives a one-file tar stream (GNU tar, PAX, optionally sparse 1.0) into an open file:
// region data at its offsets, holes left as holes, sha256 of the whole file computed on the way.

import type { FileHandle } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import * as tar from 'tar-stream';
import { FarmError } from '../../src/errors.ts';
import { ThreadHasher, type Hasher } from './hasher.ts';
import { HoleAwareWriter, SparseMapParser, sparseInfo } from './sparse.ts';

const EXTRACT_HIGH_WATER_MARK = 1024 * 1024;

export interface ReceiveProgress {
  /** File offset reached (holes included). */
  reached: number;
  /** Apparent size, once the header has been read. */
  total: number | undefined;
}

export interface Received {
  /** Apparent size of the file. */
  size: number;
  sha256: string;
  /** Bytes of region data written (what the file really holds). */
  dataBytes: number;
  sparse: boolean;
}

/**
 * Reads `stream` (a tar archive holding exactly one regular file named `expectedName`) into `fh`.
 * Backpressure flows back to the stream: nothing is read while a write is pending.
 */
export async function receiveTarFile(
  stream: Readable,
  fh: FileHandle,
  expectedName: string,
  onData?: (p: ReceiveProgress) => void,
  hasher: Hasher = new ThreadHasher(),
): Promise<Received> {
  try {
    return await receive(stream, fh, expectedName, hasher, onData);
  } finally {
    hasher.dispose();
  }
}

async function receive(
  stream: Readable,
  fh: FileHandle,
  expectedName: string,
  hasher: Hasher,
  onData: ((p: ReceiveProgress) => void) | undefined,
): Promise<Received> {
  // streamx's default 16 KiB mark is below one SSH packet (32 KiB): every write would pause and
  // resume the channel. 1 MiB lets a few packets queue; the SSH window still bounds memory.
  const extract = tar.extract({ highWaterMark: EXTRACT_HIGH_WATER_MARK });
  stream.on('error', (err) => extract.destroy(err));
  stream.pipe(extract);

  let result: Received | undefined;
  for await (const entry of extract) {
    const h = entry.header;
    if (result) throw new FarmError('FETCH', `unexpected second member ${JSON.stringify(h.name)} in the tar stream of ${expectedName}`);
    if (h.type !== 'file') throw new FarmError('FETCH', `${expectedName} is not a regular file (tar member type ${h.type})`);
    const sparse = sparseInfo(h.pax as Record<string, string> | undefined);
    const name = sparse?.name ?? h.name;
    if (name !== expectedName) throw new FarmError('FETCH', `tar sent member ${JSON.stringify(name)} instead of ${expectedName}`);
    const memberSize = h.size ?? 0;
    const total = sparse ? sparse.realSize : memberSize;
    const map = sparse ? new SparseMapParser(sparse.realSize) : undefined;
    let writer = map ? undefined : HoleAwareWriter.dense(fh, hasher, memberSize);
    for await (const chunk of entry as AsyncIterable<Buffer>) {
      let data: Buffer | undefined = chunk;
      if (!writer) {
        data = map!.push(chunk);
        if (data === undefined) continue;
        const dataBytes = map!.regions.reduce((n, r) => n + r.size, 0);
        if (map!.mapBytes + dataBytes !== memberSize) {
          throw new FarmError(
            'FETCH',
            `malformed sparse tar member: the map of ${expectedName} describes ${dataBytes} data bytes, the member holds ${memberSize - map!.mapBytes}`,
          );
        }
        writer = new HoleAwareWriter(fh, hasher, total, map!.regions);
      }
      await writer.write(data);
      onData?.({ reached: writer.reached, total });
    }
    if (!writer) throw new FarmError('FETCH', `malformed sparse tar member: the map of ${expectedName} ended early`);
    await writer.finish();
    onData?.({ reached: total, total });
    result = { size: total, sha256: '', dataBytes: writer.dataBytes, sparse: sparse !== undefined };
  }
  if (!result) throw new FarmError('FETCH', `the tar stream for ${expectedName} held no file`);
  result.sha256 = await hasher.digest();
  return result;
}
