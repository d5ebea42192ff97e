// Streams a file's data regions with dd in 1 MiB reads. GNU tar's sparse mode reads data 512
// bytes at a time (2 million read calls per GiB), which made it the slowest step of a sparse
// fetch on the lab; dd reads the same regions in ~1,000 calls per GiB. The same reader serves a
// single range (a reader per range, writing into the file itself) and a whole plan (one stream).

import type { SparseRegion, Segment } from './sparse.ts';

export interface RangePlan {
  /** Byte ranges dd reads, in order. */
  ranges: SparseRegion[];
  /** What the concatenated ranges hold: data to keep, and small holes sent along. */
  segments: Segment[];
}

// Each range costs a dd process (a few ms); a hole this small costs less to send than to skip.
const FIRST_GAP = 64 * 1024;
const MAX_RANGES = 256;

// Ranges written into the file by readers of their own (fetch.ts) cost a stream each (~15 ms of
// CPU on both ends); through Node the data costs ~1.5 s per GiB. Holes merged into such ranges
// are written as zeros (allocated, and sent): at most a sixteenth of the data, or 16 MiB.
const DIRECT_RANGES = 32;
const DIRECT_ZEROS_MIN = 16 * 1024 * 1024;

/** The ranges for readers that write into the file themselves: the data regions, holes merged
 *  until at most maxRanges remain, if that costs few zeros; undefined when it costs too many. */
export function directRanges(regions: readonly SparseRegion[], maxRanges = DIRECT_RANGES): SparseRegion[] | undefined {
  const data = regions.filter((r) => r.size > 0);
  const budget = Math.max(DIRECT_ZEROS_MIN, data.reduce((n, r) => n + r.size, 0) / 16);
  for (const plan of widerGaps(data)) {
    const zeros = plan.segments.reduce((n, s) => n + (s.keep ? 0 : s.size), 0);
    if (zeros > budget) return undefined;
    if (plan.ranges.length <= maxRanges) return plan.ranges;
  }
  return undefined; // not reached: widerGaps does not end
}

/** Plans merging ever wider holes, from FIRST_GAP by fours; the last ones have a single range. */
function* widerGaps(data: readonly SparseRegion[]): Generator<RangePlan> {
  for (let gap = FIRST_GAP; ; gap *= 4) yield coalesce(data, gap);
}

/** Merges regions separated by small holes until at most maxRanges ranges remain. */
export function planRanges(regions: readonly SparseRegion[], maxRanges = MAX_RANGES): RangePlan {
  for (const plan of widerGaps(regions.filter((r) => r.size > 0))) {
    if (plan.ranges.length <= maxRanges) return plan;
  }
  throw new Error('not reached: widerGaps does not end');
}

function coalesce(regions: readonly SparseRegion[], maxGap: number): RangePlan {
  const ranges: SparseRegion[] = [];
  const segments: Segment[] = [];
  for (const r of regions) {
    const last = ranges[ranges.length - 1];
    const gap = last ? r.offset - (last.offset + last.size) : Infinity;
    if (last && gap <= maxGap) {
      if (gap > 0) segments.push({ offset: last.offset + last.size, size: gap, keep: false });
      last.size = r.offset + r.size - last.offset;
    } else {
      ranges.push({ offset: r.offset, size: r.size });
    }
    segments.push({ offset: r.offset, size: r.size, keep: true });
  }
  return { ranges, segments };
}

/** argv of the worker-side reader; the ranges come on stdin as `OFFSET LENGTH` lines. */
export function rangesArgv(remotePath: string): string[] {
  return [
    'sh',
    '-c',
    'while read -r off len; do dd if="$1" bs=1M iflag=skip_bytes,count_bytes,fullblock skip="$off" count="$len" status=none || exit; done',
    'sh',
    remotePath,
  ];
}

export function rangesInput(ranges: readonly SparseRegion[]): string {
  return ranges.map((r) => `${r.offset} ${r.size}\n`).join('');
}
