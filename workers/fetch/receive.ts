// Receives a file into an open file handle: from a one-file tar stream (GNU tar, PAX, optionally
// sparse 1.0), from its concatenated data ranges (ranges.ts), or by following other processes that
// write its ranges into the file themselves (followRanges). Region data lands at its offsets, holes
// stay holes, and the sha256 of the whole file is computed from what landed (hasher.ts).

import type { FileHandle } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import * as tar from 'tar-stream';
import { FarmError } from '../../src/core/errors.ts';
import { FileHasher, type Hasher } from './hasher.ts';
import { HoleAwareWriter, SparseMapParser, sparseInfo, type Segment, type SparseRegion } from './sparse.ts';
import { WriteBehind } from './write-behind.ts';

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
): Promise<Received> {
  const hasher = new FileHasher(fh.fd);
  try {
    return await receive(stream, fh, expectedName, onData, hasher);
  } finally {
    hasher.dispose();
  }
}

async function receive(
  stream: Readable,
  fh: FileHandle,
  expectedName: string,
  onData: ((p: ReceiveProgress) => void) | undefined,
  hasher: Hasher,
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
    let writer: HoleAwareWriter | undefined;
    if (!map) writer = HoleAwareWriter.dense(fh, hasher, memberSize);
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
        writer = HoleAwareWriter.fromRegions(fh, hasher, total, map!.regions);
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
  result.sha256 = await hasher.digest(result.size);
  return result;
}

/**
 * Reads the concatenated ranges of a file (see ranges.ts) into `fh`: segments marked keep are
 * written at their offsets, small holes sent along are dropped, everything else is a hole.
 */
export async function receiveRanges(
  stream: Readable,
  fh: FileHandle,
  size: number,
  segments: readonly Segment[],
  onData?: (p: ReceiveProgress) => void,
): Promise<Received> {
  const kept = segments.reduce((n, s) => n + (s.keep ? s.size : 0), 0);
  const hasher = new FileHasher(fh.fd);
  try {
    const writer = new HoleAwareWriter(fh, hasher, size, segments);
    await consume(stream, (chunk) => {
      const wait = writer.write(chunk);
      onData?.({ reached: writer.reached, total: size });
      return wait;
    });
    await writer.finish();
    onData?.({ reached: size, total: size });
    return { size, sha256: await hasher.digest(size), dataBytes: writer.dataBytes, sparse: kept < size };
  } finally {
    hasher.dispose();
  }
}

/** Feeds each chunk to `handle` as it arrives; while a returned promise is pending the stream
 *  is paused. (An async iterator over a Readable joins the buffered chunks into a new buffer on
 *  every read: a copy of everything received.) */
function consume(stream: Readable, handle: (chunk: Buffer) => Promise<void> | void): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let failed = false;
    let pending: Promise<void> | undefined;
    const fail = (err: unknown) => {
      if (failed) return;
      failed = true;
      stream.off('data', onData);
      reject(err);
    };
    const onData = (chunk: Buffer) => {
      let wait: Promise<void> | void;
      try {
        wait = handle(chunk);
      } catch (err) {
        return fail(err);
      }
      if (!wait) return;
      stream.pause();
      pending = wait.then(() => {
        pending = undefined;
        if (!failed) stream.resume();
      }, fail);
    };
    stream.on('data', onData);
    stream.once('error', fail);
    stream.once('end', () => {
      // The last chunk's wait may still be pending.
      void (pending ?? Promise.resolve()).then(() => {
        if (!failed) resolve();
      });
    });
  });
}

// How often a file written by another process is looked at (size, hashing, progress).
const FOLLOW_INTERVAL_MS = 50;

/** Another process that writes one range of the file by appending to it (its stdout is the file,
 *  opened O_APPEND), e.g. a reader on the worker whose output OpenSSH writes into the file. */
export interface RangeWriter {
  /** Starts writing `range`; the file already ends where the range begins. */
  start(range: SparseRegion): void;
  /** Settles once the writer ended and everything it wrote is in the file. */
  readonly done: Promise<unknown>;
  cancel(): void;
}

/**
 * Receives a file whose ranges other processes write into it directly, one range after another:
 * before each range the file is extended to the range's offset (a hole), and its writer appends
 * from there. What lands is hashed (read back by the FileHasher) and flushed to disk as the file
 * grows; each writer must deliver exactly its range. The next writer is opened while the current
 * one runs, so a range starts without waiting for a connection. Holes between ranges stay holes.
 */
export async function followRanges(
  fh: FileHandle,
  size: number,
  ranges: readonly SparseRegion[],
  openWriter: () => Promise<RangeWriter>,
  onData?: (p: ReceiveProgress) => void,
): Promise<Received> {
  let end = 0;
  for (const r of ranges) {
    if (r.offset < end || r.size <= 0 || r.offset + r.size > size) {
      throw new FarmError('FETCH', `range ${r.offset}+${r.size} is empty, out of order or past the file size ${size}`);
    }
    end = r.offset + r.size;
  }
  const hasher = new FileHasher(fh.fd);
  const flusher = new WriteBehind(fh);
  const open = new Set<RangeWriter>();
  const opening = (): Promise<RangeWriter> => {
    const w = openWriter().then((writer) => {
      open.add(writer);
      return writer;
    });
    w.catch(() => {}); // awaited in turn; a failure meanwhile must not go unhandled
    return w;
  };
  let seen = 0;
  let writing = false; // a writer is under way: only then does the file grow on its own
  const look = async () => {
    if (!writing) return;
    const now = (await fh.stat()).size;
    if (now <= seen) return;
    hasher.written(seen, now - seen);
    flusher.wrote(now - seen);
    seen = now;
    onData?.({ reached: seen, total: size });
  };
  let looking: Promise<void> = Promise.resolve();
  const timer = setInterval(() => {
    looking = looking.then(look, look);
  }, FOLLOW_INTERVAL_MS);
  let dataBytes = 0;
  let next = ranges.length > 0 ? opening() : undefined;
  try {
    for (let i = 0; i < ranges.length; i++) {
      const range = ranges[i]!;
      const writer = await next!;
      next = i + 1 < ranges.length ? opening() : undefined;
      // The hole before the range (the file holds exactly what was seen so far).
      if (seen < range.offset) {
        await fh.truncate(range.offset);
        seen = range.offset;
      }
      writing = true;
      writer.start(range);
      await writer.done;
      open.delete(writer);
      looking = looking.then(look, look);
      await looking;
      writing = false;
      const rangeEnd = range.offset + range.size;
      if (seen !== rangeEnd) {
        const got = seen - range.offset;
        throw new FarmError(
          'FETCH',
          got > range.size
            ? `the stream for the range at offset ${range.offset} brought ${got - range.size} bytes more than its ${range.size}`
            : `the stream ended with ${rangeEnd - seen} bytes of the file missing (${got} of ${range.size} bytes of the range at offset ${range.offset} arrived)`,
        );
      }
      dataBytes += range.size;
    }
    clearInterval(timer);
    await looking;
    if (seen < size) await fh.truncate(size);
    await flusher.settle();
    onData?.({ reached: size, total: size });
    return { size, sha256: await hasher.digest(size), dataBytes, sparse: dataBytes < size };
  } catch (err) {
    for (const w of open) w.cancel();
    void next?.then((w) => w.cancel(), () => {}); // one still being opened
    throw err;
  } finally {
    clearInterval(timer);
    hasher.dispose();
  }
}
