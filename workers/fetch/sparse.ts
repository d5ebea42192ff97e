// GNU tar's PAX sparse format 1.0 on the receiving side, and a writer that keeps holes as holes.
//
// A member in this format carries pax keys GNU.sparse.major=1, GNU.sparse.minor=0,
// GNU.sparse.realsize and GNU.sparse.name. Its data starts with the sparse map as decimal ASCII
// lines (the number of regions, then offset and size of each), padded with NULs to a 512-byte
// block, followed by the regions' bytes back to back. Everything between regions is a hole.

import type { FileHandle } from 'node:fs/promises';
import { FarmError } from '../../src/core/errors.ts';
import type { Hasher } from './hasher.ts';
import { WriteBehind } from './write-behind.ts';

export interface SparseRegion {
  offset: number;
  size: number;
}

export interface SparseInfo {
  /** The file's apparent size. */
  realSize: number;
  /** The file's name inside the archive (GNU.sparse.name). */
  name: string | undefined;
}

const BLOCK = 512;
// A disk image has far fewer data extents; the cap bounds memory on a corrupt stream.
const MAX_REGIONS = 4_000_000;
const MAX_DIGITS = 16; // Number.MAX_SAFE_INTEGER has 16 digits

function bad(message: string): FarmError {
  return new FarmError('FETCH', `malformed sparse tar member: ${message}`);
}

/** Reads the PAX 1.0 sparse keys of a tar header; undefined for a plain member. */
export function sparseInfo(pax: Record<string, string> | null | undefined): SparseInfo | undefined {
  if (!pax || (pax['GNU.sparse.major'] === undefined && pax['GNU.sparse.realsize'] === undefined)) {
    if (pax && (pax['GNU.sparse.map'] !== undefined || pax['GNU.sparse.numblocks'] !== undefined)) {
      throw bad('sparse format 0.x is not supported; the worker must run tar with --sparse-version=1.0');
    }
    return undefined;
  }
  if (pax['GNU.sparse.major'] !== '1' || pax['GNU.sparse.minor'] !== '0') {
    throw bad(`sparse format ${pax['GNU.sparse.major']}.${pax['GNU.sparse.minor']} is not supported (want 1.0)`);
  }
  const realSize = parseDecimal(pax['GNU.sparse.realsize'] ?? '', 'GNU.sparse.realsize');
  return { realSize, name: pax['GNU.sparse.name'] };
}

function parseDecimal(text: string, what: string): number {
  if (!/^\d{1,16}$/.test(text)) throw bad(`${what} is not a decimal number: ${JSON.stringify(text.slice(0, 40))}`);
  const n = Number(text);
  if (!Number.isSafeInteger(n)) throw bad(`${what} is too large`);
  return n;
}

/**
 * Incremental parser of the sparse map at the start of a member's data. Feed it chunks with
 * push(); once the map and its padding are complete it returns the bytes that follow (the first
 * region data, possibly empty), and `regions` holds the validated map.
 */
export class SparseMapParser {
  regions: SparseRegion[] = [];
  /** Bytes of the member taken by the map and its padding. */
  mapBytes = 0;
  private count: number | undefined;
  private pending: number[] = [];
  private digits = '';
  private paddingLeft: number | undefined;

  constructor(private readonly realSize: number) {}

  get done(): boolean {
    return this.paddingLeft === 0;
  }

  /** Returns the data after the map once complete, else undefined (more input needed). */
  push(chunk: Buffer): Buffer | undefined {
    let i = 0;
    while (this.paddingLeft === undefined && i < chunk.length) {
      const c = chunk[i++]!;
      this.mapBytes++;
      if (c >= 0x30 && c <= 0x39) {
        if (this.digits.length >= MAX_DIGITS) throw bad('number too long in the sparse map');
        this.digits += String.fromCharCode(c);
      } else if (c === 0x0a) {
        this.number(parseDecimal(this.digits, 'sparse map entry'));
        this.digits = '';
      } else {
        throw bad(`unexpected byte 0x${c.toString(16).padStart(2, '0')} in the sparse map`);
      }
    }
    if (this.paddingLeft === undefined) return undefined;
    const skip = Math.min(this.paddingLeft, chunk.length - i);
    this.paddingLeft -= skip;
    this.mapBytes += skip;
    i += skip;
    return this.paddingLeft === 0 ? chunk.subarray(i) : undefined;
  }

  private number(n: number): void {
    if (this.count === undefined) {
      if (n > MAX_REGIONS) throw bad(`${n} regions in the sparse map (limit ${MAX_REGIONS})`);
      this.count = n;
    } else {
      this.pending.push(n);
      if (this.pending.length === 2) {
        const [offset, size] = this.pending as [number, number];
        this.pending = [];
        const prev = this.regions[this.regions.length - 1];
        if (prev && offset < prev.offset + prev.size) throw bad(`region at ${offset} overlaps or precedes the one before it`);
        if (offset + size > this.realSize) throw bad(`region ${offset}+${size} ends past the file size ${this.realSize}`);
        this.regions.push({ offset, size });
      }
    }
    if (this.count !== undefined && this.regions.length === this.count) {
      this.paddingLeft = (BLOCK - (this.mapBytes % BLOCK)) % BLOCK;
    }
  }
}

// Data is gathered into writes of about this size: few syscalls, bounded memory.
const BATCH = 4 * 1024 * 1024;

/** A run of bytes in the incoming stream: `keep` bytes are file data to write; the others lie in
 *  a hole that was sent anyway (small holes inside a coalesced range) and are dropped. */
export interface Segment extends SparseRegion {
  keep: boolean;
}

/** Contiguous buffers starting at a file offset. */
class Run {
  buffers: Buffer[] = [];
  bytes = 0;
  offset = 0;
  get end(): number {
    return this.offset + this.bytes;
  }
  take(): { buffers: Buffer[]; offset: number; bytes: number } {
    const out = { buffers: this.buffers, offset: this.offset, bytes: this.bytes };
    this.buffers = [];
    this.bytes = 0;
    return out;
  }
}

/**
 * Writes a file from a stream of segments: data lands at its offsets with positional writes, and
 * each written extent is handed to the hasher, which reads it back (hasher.ts). Holes are never
 * written: the file is extended to its real size with ftruncate. At most one batch is being
 * written while the next one fills.
 */
export class HoleAwareWriter {
  private index = 0;
  private left: number;
  /** File offset of the next stream byte. */
  private position: number;
  private readonly writeRun = new Run();
  private inFlight: Promise<void> | undefined;
  private readonly flusher: WriteBehind;
  /** Data bytes received and kept (holes excluded). */
  dataBytes = 0;

  constructor(
    private readonly fh: FileHandle,
    private readonly hasher: Hasher,
    private readonly realSize: number,
    private readonly segments: readonly Segment[],
  ) {
    let end = 0;
    for (const seg of segments) {
      if (seg.offset < end || seg.size < 0 || seg.offset + seg.size > realSize) {
        throw bad(`segment ${seg.offset}+${seg.size} is out of order or past the file size ${realSize}`);
      }
      end = seg.offset + seg.size;
    }
    this.flusher = new WriteBehind(fh);
    this.position = segments[0]?.offset ?? 0;
    this.left = segments[0]?.size ?? 0;
    this.skipEmpty();
  }

  /** Regions in archive order, all of them data. */
  static fromRegions(fh: FileHandle, hasher: Hasher, realSize: number, regions: readonly SparseRegion[]): HoleAwareWriter {
    return new HoleAwareWriter(fh, hasher, realSize, regions.map((r) => ({ ...r, keep: true })));
  }

  /** A dense file: one region covering everything. */
  static dense(fh: FileHandle, hasher: Hasher, size: number): HoleAwareWriter {
    return HoleAwareWriter.fromRegions(fh, hasher, size, [{ offset: 0, size }]);
  }

  /** The file offset reached so far (holes included), for progress. */
  get reached(): number {
    return this.position;
  }

  /** Stream bytes still expected. */
  get remaining(): number {
    let n = this.left;
    for (let i = this.index + 1; i < this.segments.length; i++) n += this.segments[i]!.size;
    return n;
  }

  private skipEmpty(): void {
    while (this.left === 0 && this.index < this.segments.length - 1) {
      this.index++;
      const seg = this.segments[this.index]!;
      this.position = seg.offset;
      this.left = seg.size;
    }
  }

  /** Takes the next bytes of the stream, in order. Returns a promise only when it has to wait
   *  (the previous write is still going); the caller must not write again before it settles. */
  write(chunk: Buffer): Promise<void> | void {
    let rest = chunk;
    while (rest.length > 0) {
      if (this.left === 0) throw bad(`more data than the sparse map describes (${rest.length} bytes extra)`);
      const keep = this.segments[this.index]!.keep;
      // Runs are flushed when full or when the next byte does not continue them.
      const wait = this.flushBefore(keep);
      if (wait) {
        const remainder = rest;
        return wait.then(() => this.write(remainder));
      }
      const part = rest.length <= this.left ? rest : rest.subarray(0, this.left);
      rest = rest.subarray(part.length);
      if (keep) {
        if (this.writeRun.bytes === 0) this.writeRun.offset = this.position;
        this.writeRun.buffers.push(part);
        this.writeRun.bytes += part.length;
        this.dataBytes += part.length;
      }
      this.position += part.length;
      this.left -= part.length;
      this.skipEmpty();
    }
  }

  private flushBefore(keep: boolean): Promise<void> | undefined {
    const writeRun = this.writeRun;
    if (writeRun.bytes >= BATCH || (keep && writeRun.bytes > 0 && writeRun.end !== this.position)) {
      const wait = this.flushWrite();
      if (wait) return wait;
    }
    return undefined;
  }

  /** Starts writing the gathered run, after the previous write has landed. */
  private flushWrite(): Promise<void> | undefined {
    if (this.writeRun.bytes === 0) return undefined;
    if (this.inFlight) return this.inFlight.then(() => this.flushWrite());
    const run = this.writeRun.take();
    const write = writeAll(this.fh, run.buffers, run.offset).then(() => {
      if (this.inFlight === write) this.inFlight = undefined;
      this.hasher.written(run.offset, run.bytes);
      this.flusher.wrote(run.bytes);
    });
    // A failed write stays in inFlight and surfaces at the next flush or in finish().
    this.inFlight = write;
    write.catch(() => {});
    return undefined;
  }

  /** Checks that every segment arrived, writes the rest and sets the size. */
  async finish(): Promise<void> {
    if (this.remaining > 0) throw bad(`the stream ended with ${this.remaining} bytes of region data missing`);
    await this.flushWrite();
    while (this.inFlight) await this.inFlight;
    await this.flusher.settle();
    await this.fh.truncate(this.realSize);
  }
}

/** writev until everything is written (short writes are legal, if rare, on regular files). */
async function writeAll(fh: FileHandle, buffers: Buffer[], offset: number): Promise<void> {
  let bufs = buffers;
  let pos = offset;
  let total = bufs.reduce((n, b) => n + b.length, 0);
  while (total > 0) {
    const { bytesWritten } = await fh.writev(bufs, pos);
    if (bytesWritten <= 0) throw new FarmError('FETCH', `write at offset ${pos} wrote nothing`);
    pos += bytesWritten;
    total -= bytesWritten;
    let skip = bytesWritten;
    while (skip > 0 && bufs.length > 0) {
      const first = bufs[0]!;
      if (first.length <= skip) {
        skip -= first.length;
        bufs = bufs.slice(1);
      } else {
        bufs = [first.subarray(skip), ...bufs.slice(1)];
        skip = 0;
      }
    }
  }
}
