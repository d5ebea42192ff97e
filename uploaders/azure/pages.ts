// Which parts of a fixed VHD a page blob needs: a new page blob reads as zeros everywhere, so only
// the non-zero 512-byte pages are sent (a bootc disk is mostly empty filesystem), each Put Page
// at most 4 MiB, as the Blob service allows. Pure planning plus one read pass over the file.

import { open } from 'node:fs/promises';

/** A page blob's page: offsets and lengths of Put Page are multiples of it. */
export const PAGE = 512;
/** The Blob service's largest Put Page body. */
export const MAX_PUT = 4 * 1024 * 1024;
// Zero runs shorter than this are sent rather than split around: a request costs a round trip,
// 64 KiB of zeros cost less than that on any link the farm runs on.
export const MERGE_GAP = 64 * 1024;
// Node has no lseek(SEEK_DATA), so holes are found by reading them (the kernel fills holes with
// zeros without touching the disk); big reads keep syscalls few, and a zero chunk is one memcmp.
export const SCAN_CHUNK = 8 * 1024 * 1024;
// Non-zero chunks are looked at in pieces of this size before their pages are.
const PIECE = 64 * 1024;

const ZERO = Buffer.alloc(SCAN_CHUNK);

export interface PageRange {
  offset: number;
  length: number;
}

function isZero(buf: Buffer, start: number, end: number): boolean {
  return buf.compare(ZERO, 0, end - start, start, end) === 0;
}

/** The non-zero pages of `buf` (whose first byte is at `base` in the file), merged where adjacent. */
export function nonZeroRanges(buf: Buffer, base = 0): PageRange[] {
  if (base % PAGE !== 0) throw new Error(`a scan starts on a page boundary, not at ${base}`);
  const out: PageRange[] = [];
  const push = (offset: number, length: number) => {
    const last = out.at(-1);
    if (last && last.offset + last.length === offset) last.length += length;
    else out.push({ offset, length });
  };
  for (let p = 0; p < buf.length; p += Math.min(SCAN_CHUNK, buf.length - p)) {
    const chunkEnd = Math.min(p + SCAN_CHUNK, buf.length);
    if (isZero(buf, p, chunkEnd)) continue;
    for (let q = p; q < chunkEnd; q += PIECE) {
      const pieceEnd = Math.min(q + PIECE, chunkEnd);
      if (isZero(buf, q, pieceEnd)) continue;
      for (let s = q; s < pieceEnd; s += PAGE) {
        const end = Math.min(s + PAGE, pieceEnd);
        if (!isZero(buf, s, end)) push(base + s, PAGE); // a short last page is sent whole: the blob is page-sized
      }
    }
  }
  return out;
}

/**
 * Collects ranges in file order into Put Page requests: a range closer than `gap` to the previous
 * one joins it while the request stays within `max`; longer ranges are cut at `max`.
 */
export class RangePlanner {
  readonly ranges: PageRange[] = [];

  constructor(
    private readonly gap = MERGE_GAP,
    private readonly max = MAX_PUT,
  ) {
    if (max % PAGE !== 0 || max <= 0) throw new Error(`the request size ${max} is not a positive multiple of ${PAGE}`);
  }

  add(range: PageRange): void {
    let { offset, length } = range;
    if (offset % PAGE !== 0 || length % PAGE !== 0) throw new Error(`range ${offset}+${length} is not page-aligned`);
    const last = this.ranges.at(-1);
    if (last && offset < last.offset + last.length) throw new Error(`range ${offset} comes before the end of the previous one`);
    if (last && offset - (last.offset + last.length) < this.gap) {
      const room = this.max - last.length - (offset - (last.offset + last.length));
      if (room > 0) {
        const take = Math.min(room, length);
        last.length = offset + take - last.offset;
        offset += take;
        length -= take;
      }
    }
    while (length > 0) {
      const take = Math.min(this.max, length);
      this.ranges.push({ offset, length: take });
      offset += take;
      length -= take;
    }
  }
}

export interface PagePlan {
  ranges: PageRange[];
  /** Bytes the ranges cover (what will be sent). */
  bytes: number;
}

/** Reads the first `size` bytes of the file once and plans the Put Page requests for them. */
export async function planPages(
  path: string,
  size: number,
  opts: { signal?: AbortSignal; onScanned?: (bytes: number) => void; gap?: number; max?: number } = {},
): Promise<PagePlan> {
  if (size % PAGE !== 0) throw new Error(`${path}: ${size} bytes is not a whole number of ${PAGE}-byte pages`);
  const planner = new RangePlanner(opts.gap, opts.max);
  const fh = await open(path, 'r');
  try {
    const chunk = Buffer.allocUnsafe(SCAN_CHUNK);
    for (let pos = 0; pos < size; pos += SCAN_CHUNK) {
      opts.signal?.throwIfAborted();
      const want = Math.min(SCAN_CHUNK, size - pos);
      let got = 0;
      while (got < want) {
        const { bytesRead } = await fh.read(chunk, got, want - got, pos + got);
        if (bytesRead === 0) throw new Error(`${path} ended at byte ${pos + got}, before its size ${size}`);
        got += bytesRead;
      }
      for (const r of nonZeroRanges(chunk.subarray(0, want), pos)) planner.add(r);
      opts.onScanned?.(pos + want);
    }
  } finally {
    await fh.close();
  }
  return { ranges: planner.ranges, bytes: planner.ranges.reduce((n, r) => n + r.length, 0) };
}
