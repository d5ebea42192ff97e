// The ranges method's parts: tar's map read from the head of its stream, the range planner, and
// the worker-side dd reader. The worker commands are argv arrays; here they run through the local
// shell exactly as sshd would run them.

import { execFileSync, spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, statSync, writeSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { layoutArgv, parseLayout, LayoutTruncated } from '../../workers/fetch/layout.ts';
import { directRanges, planRanges, rangesArgv, rangesInput } from '../../workers/fetch/ranges.ts';
import { receiveRanges } from '../../workers/fetch/receive.ts';

const KiB = 1024;
const MiB = 1024 * KiB;
let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'farm-ranges-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A sparse file with 4 KiB blocks of data at the given offsets. */
function makeFile(name: string, size: number, offsets: number[]): string {
  const file = join(dir, name);
  execFileSync('truncate', ['-s', String(size), file]);
  const fd = openSync(file, 'r+');
  const block = Buffer.alloc(4 * KiB);
  offsets.forEach((off, i) => {
    block.fill((i % 250) + 1);
    writeSync(fd, block, 0, block.length, off);
  });
  closeSync(fd);
  return file;
}

function run(argv: string[], input?: string): Buffer {
  return execFileSync(argv[0]!, argv.slice(1), { input, maxBuffer: 256 * MiB });
}

function sha256sum(file: string): string {
  return execFileSync('sha256sum', [file]).toString().slice(0, 64);
}

describe('planRanges', () => {
  it('keeps far-apart regions as separate ranges and drops empty ones', () => {
    const plan = planRanges([
      { offset: 0, size: 4096 },
      { offset: 10 * MiB, size: 8192 },
      { offset: 20 * MiB, size: 0 },
    ]);
    expect(plan.ranges).toEqual([
      { offset: 0, size: 4096 },
      { offset: 10 * MiB, size: 8192 },
    ]);
    expect(plan.segments.every((s) => s.keep)).toBe(true);
  });

  it('sends small holes along rather than starting a reader per region, marking them', () => {
    const plan = planRanges([
      { offset: 0, size: 4096 },
      { offset: 8192, size: 4096 },
      { offset: 5 * MiB, size: 4096 },
    ]);
    expect(plan.ranges).toEqual([
      { offset: 0, size: 12288 },
      { offset: 5 * MiB, size: 4096 },
    ]);
    expect(plan.segments).toEqual([
      { offset: 0, size: 4096, keep: true },
      { offset: 4096, size: 4096, keep: false },
      { offset: 8192, size: 4096, keep: true },
      { offset: 5 * MiB, size: 4096, keep: true },
    ]);
  });

  it('merges wider holes until the number of ranges is bounded', () => {
    const regions = Array.from({ length: 1000 }, (_, i) => ({ offset: i * MiB, size: 4096 }));
    const plan = planRanges(regions, 100);
    expect(plan.ranges.length).toBeLessThanOrEqual(100);
    expect(plan.ranges.length).toBeGreaterThan(0);
    // Every region is still kept, in order, and the segments tile the ranges exactly.
    expect(plan.segments.filter((s) => s.keep).map(({ offset, size }) => ({ offset, size }))).toEqual(regions);
    const streamed = plan.ranges.reduce((n, r) => n + r.size, 0);
    expect(plan.segments.reduce((n, s) => n + s.size, 0)).toBe(streamed);
  });

  it('plans nothing for a file that is all hole', () => {
    expect(planRanges([])).toEqual({ ranges: [], segments: [] });
  });
});

describe('directRanges', () => {
  it('gives a dense file one range, and a file with no data none', () => {
    expect(directRanges([{ offset: 0, size: 5 * MiB }])).toEqual([{ offset: 0, size: 5 * MiB }]);
    expect(directRanges([])).toEqual([]);
  });

  it('keeps a few far-apart regions as they are', () => {
    const regions = Array.from({ length: 8 }, (_, i) => ({ offset: i * 512 * MiB + 192 * MiB, size: 128 * MiB }));
    expect(directRanges(regions)).toEqual(regions);
  });

  it('merges holes until few ranges remain, while the zeros that costs stay small', () => {
    // 200 extents of 4 MiB, 256 KiB apart in 4 groups 1 GiB apart (a filesystem's data runs):
    // 49 MiB of holes merged for 800 MiB of data.
    const regions = [0, 1, 2, 3].flatMap((g) => Array.from({ length: 50 }, (_, i) => ({ offset: g * 1024 * MiB + i * (4 * MiB + 256 * KiB), size: 4 * MiB })));
    const ranges = directRanges(regions)!;
    expect(ranges).toHaveLength(4);
    expect(ranges[1]).toEqual({ offset: 1024 * MiB, size: 200 * MiB + 49 * 256 * KiB });
    // The same runs with 1 MiB extents: merging them would write more zeros than data.
    const small = regions.map((r) => ({ offset: r.offset, size: MiB }));
    expect(directRanges(small)).toBeUndefined();
  });

  it('says no when few ranges would cost many zeros (leaving the file to one stream)', () => {
    const regions = Array.from({ length: 1500 }, (_, i) => ({ offset: i * 128 * KiB, size: 4 * KiB }));
    expect(directRanges(regions)).toBeUndefined();
    const spread = Array.from({ length: 40 }, (_, i) => ({ offset: i * 1024 * MiB, size: 4 * KiB }));
    expect(directRanges(spread)).toBeUndefined();
  });
});

describe('layout from the head of the tar stream', () => {
  it('reads the sparse map of a file', async () => {
    const file = makeFile('layout.raw', 64 * MiB, [0, 4 * MiB, 40 * MiB + 8192]);
    const head = run(layoutArgv(file, 16 * KiB));
    expect(head.length).toBeLessThanOrEqual(16 * KiB);
    const layout = await parseLayout(head, 'layout.raw');
    expect(layout).toEqual({
      size: 64 * MiB,
      sparse: true,
      headBytes: head.length,
      regions: [
        { offset: 0, size: 4096 },
        { offset: 4 * MiB, size: 4096 },
        { offset: 40 * MiB + 8192, size: 4096 },
      ],
    });
  });

  it('reads a dense file as one region', async () => {
    const file = join(dir, 'dense.bin');
    execFileSync('sh', ['-c', 'head -c 100000 /dev/urandom > "$1"', 'sh', file]);
    const layout = await parseLayout(run(layoutArgv(file, 16 * KiB)), 'dense.bin');
    expect(layout).toMatchObject({ size: 100000, sparse: false, regions: [{ offset: 0, size: 100000 }] });
  });

  it('says when the map does not fit in the bytes read', async () => {
    const offsets = Array.from({ length: 1500 }, (_, i) => i * 64 * KiB);
    const file = makeFile('many.raw', 1500 * 64 * KiB, offsets);
    await expect(parseLayout(run(layoutArgv(file, 16 * KiB)), 'many.raw')).rejects.toBeInstanceOf(LayoutTruncated);
    const layout = await parseLayout(run(layoutArgv(file, 256 * KiB)), 'many.raw');
    expect(layout?.regions).toHaveLength(1500);
  });

  it('refuses a directory and a corrupt header', async () => {
    await expect(parseLayout(run(layoutArgv(dir, 16 * KiB)), dir.split('/').pop()!)).rejects.toThrow(/not a regular file \(tar member type directory\)/);
    const file = makeFile('corrupt.raw', MiB, [0]);
    const head = run(layoutArgv(file, 16 * KiB));
    head[1034] = head[1034]! ^ 0xff; // inside the ustar header after the PAX header
    await expect(parseLayout(head, 'corrupt.raw')).rejects.toThrow(/checksum/);
  });

  it('finds no file in the output of a failed tar', async () => {
    const head = execFileSync('sh', ['-c', '"$@" 2>/dev/null; true', 'sh', ...layoutArgv(join(dir, 'missing.raw'), 16 * KiB)]);
    expect(await parseLayout(head, 'missing.raw')).toBeUndefined();
  });
});

describe('dd ranges end to end (local shell as the worker)', () => {
  {
    it('rebuilds a fragmented sparse file: identical, sparse, sha256', async () => {
      const hashing = 'ranges';
      // 700 blocks with holes of 60 KiB between them (sent along) and a few far apart.
      const offsets = [...Array.from({ length: 700 }, (_, i) => i * 64 * KiB), 80 * MiB, 100 * MiB - 4096];
      const src = makeFile(`frag-${hashing}.raw`, 100 * MiB, offsets);
      const layout = (await parseLayout(run(layoutArgv(src, 256 * KiB)), `frag-${hashing}.raw`))!;
      const plan = planRanges(layout.regions);
      expect(plan.segments.some((s) => !s.keep)).toBe(true);

      const argv = rangesArgv(src);
      const child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'inherit'] });
      child.stdin.end(rangesInput(plan.ranges));
      const out = join(dir, `frag-${hashing}.out`);
      const fh = await open(out, 'w+');
      const r = await receiveRanges(child.stdout, fh, layout.size, plan.segments);
      await fh.close();

      expect(r.size).toBe(100 * MiB);
      expect(r.dataBytes).toBe(offsets.length * 4096);
      expect(r.sha256).toBe(sha256sum(src));
      execFileSync('cmp', [src, out]);
      // The holes sent along were not written.
      expect(statSync(out).blocks * 512).toBeLessThanOrEqual(offsets.length * 4096 + 256 * KiB);
    });
  }

  it('fails when the stream is shorter than the plan (a file that shrank)', async () => {
    const src = makeFile('shrinks.raw', 8 * MiB, [0, 4 * MiB]);
    const layout = (await parseLayout(run(layoutArgv(src, 16 * KiB)), 'shrinks.raw'))!;
    const plan = planRanges(layout.regions);
    execFileSync('truncate', ['-s', String(4 * MiB + 100), src]);
    const stream = run(rangesArgv(src), rangesInput(plan.ranges));
    const fh = await open(join(dir, 'shrinks.out'), 'w+');
    await expect(receiveRanges(Readable.from([stream]), fh, layout.size, plan.segments)).rejects.toThrow(/bytes of region data missing/);
    await fh.close();
  });
});
