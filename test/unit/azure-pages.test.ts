import { execFile } from 'node:child_process';
import { mkdtemp, open, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_PUT, MERGE_GAP, PAGE, RangePlanner, nonZeroRanges, planPages } from '../../uploaders/azure/pages.ts';
import { FOOTER_SIZE, MIB, checkVhd, parseFooter, vhdProblem } from '../../uploaders/azure/vhd.ts';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'farm-azure-pages-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function sparseFile(name: string, size: number, writes: Array<[offset: number, data: Buffer]>): Promise<string> {
  const path = join(dir, name);
  const fh = await open(path, 'w');
  await fh.truncate(size);
  for (const [off, data] of writes) await fh.write(data, 0, data.length, off);
  await fh.close();
  return path;
}

describe('nonZeroRanges', () => {
  it('finds single non-zero pages and merges adjacent ones', () => {
    const buf = Buffer.alloc(16 * PAGE);
    buf[3 * PAGE + 7] = 1; // page 3
    buf[4 * PAGE] = 1; // page 4, adjacent
    buf[10 * PAGE + PAGE - 1] = 9; // page 10, last byte
    expect(nonZeroRanges(buf, 1024 * PAGE)).toEqual([
      { offset: (1024 + 3) * PAGE, length: 2 * PAGE },
      { offset: (1024 + 10) * PAGE, length: PAGE },
    ]);
  });

  it('sees nothing in zeros, and a whole page for a short non-zero tail', () => {
    expect(nonZeroRanges(Buffer.alloc(3 * MIB))).toEqual([]);
    const short = Buffer.alloc(PAGE + 10);
    short[PAGE + 3] = 1;
    expect(nonZeroRanges(short)).toEqual([{ offset: PAGE, length: PAGE }]);
  });

  it('refuses a base that is not page-aligned', () => {
    expect(() => nonZeroRanges(Buffer.alloc(PAGE), 100)).toThrow(/page boundary/);
  });
});

describe('RangePlanner', () => {
  it('joins ranges closer than the gap and keeps farther ones apart', () => {
    const p = new RangePlanner(4 * PAGE, 64 * PAGE);
    p.add({ offset: 0, length: PAGE });
    p.add({ offset: 4 * PAGE, length: PAGE }); // gap 3 pages < 4: joined, zeros between are sent
    p.add({ offset: 9 * PAGE, length: PAGE }); // gap 4 pages: apart
    expect(p.ranges).toEqual([
      { offset: 0, length: 5 * PAGE },
      { offset: 9 * PAGE, length: PAGE },
    ]);
  });

  it('cuts requests at the Put Page limit, also when joining', () => {
    const p = new RangePlanner(MERGE_GAP, MAX_PUT);
    p.add({ offset: 0, length: MAX_PUT * 2 + PAGE });
    expect(p.ranges.map((r) => r.length)).toEqual([MAX_PUT, MAX_PUT, PAGE]);
    const q = new RangePlanner(MERGE_GAP, 8 * PAGE);
    q.add({ offset: 0, length: 6 * PAGE });
    q.add({ offset: 7 * PAGE, length: 4 * PAGE }); // joins up to 8 pages, the rest is its own request
    expect(q.ranges).toEqual([
      { offset: 0, length: 8 * PAGE },
      { offset: 8 * PAGE, length: 3 * PAGE },
    ]);
    for (const r of [...p.ranges, ...q.ranges]) expect(r.length).toBeLessThanOrEqual(MAX_PUT);
  });

  it('refuses unaligned and out-of-order ranges', () => {
    const p = new RangePlanner();
    expect(() => p.add({ offset: 1, length: PAGE })).toThrow(/page-aligned/);
    p.add({ offset: 10 * PAGE, length: PAGE });
    expect(() => p.add({ offset: 5 * PAGE, length: PAGE })).toThrow(/before the end/);
  });
});

describe('planPages', () => {
  it('plans only the data of a sparse file, across scan chunks', async () => {
    const size = 40 * MIB;
    const data = Buffer.alloc(3 * MIB, 0xab);
    const path = await sparseFile('sparse.img', size, [
      [7 * MIB, data], // crosses no chunk border
      [16 * MIB - PAGE, Buffer.alloc(2 * PAGE, 1)], // crosses the 8 MiB scan chunk at 16 MiB
      [size - PAGE, Buffer.alloc(PAGE, 2)],
    ]);
    const scanned: number[] = [];
    const plan = await planPages(path, size, { onScanned: (n) => scanned.push(n) });
    expect(plan.ranges).toEqual([
      { offset: 7 * MIB, length: 3 * MIB },
      { offset: 16 * MIB - PAGE, length: 2 * PAGE },
      { offset: size - PAGE, length: PAGE },
    ]);
    expect(plan.bytes).toBe(3 * MIB + 3 * PAGE);
    expect(scanned.at(-1)).toBe(size);
  });

  it('refuses a size that is not whole pages, and a file shorter than its size', async () => {
    const path = await sparseFile('short.img', 4 * PAGE, []);
    await expect(planPages(path, 4 * PAGE + 1)).rejects.toThrow(/whole number/);
    await expect(planPages(path, 8 * PAGE)).rejects.toThrow(/ended at byte/);
  });
});

describe('VHD checks', () => {
  const run = promisify(execFile);
  async function vhd(name: string, rawSize: number, opts: string): Promise<string> {
    const raw = await sparseFile(`${name}.raw`, rawSize, [[0, Buffer.from('data')]]);
    const out = join(dir, `${name}.vhd`);
    await run('qemu-img', ['convert', '-f', 'raw', '-O', 'vpc', '-o', opts, raw, out]);
    return out;
  }

  it("takes qemu-img's fixed, force_size VHD of a whole-MiB disk", async () => {
    const path = await vhd('fixed', 8 * MIB, 'subformat=fixed,force_size=on');
    const size = (await stat(path)).size;
    expect(size).toBe(8 * MIB + FOOTER_SIZE);
    await expect(checkVhd(path, size)).resolves.toEqual({ currentSize: 8 * MIB, diskType: 2 });
  });

  it('refuses a dynamic VHD', async () => {
    const path = await vhd('dynamic', 8 * MIB, 'subformat=dynamic');
    await expect(checkVhd(path, (await stat(path)).size)).rejects.toThrow(/dynamic VHD; Azure takes fixed VHDs only/);
  });

  it('refuses a virtual size that is not a whole MiB, and a file that is not a VHD', async () => {
    const path = await vhd('odd', 8 * MIB + 4096, 'subformat=fixed,force_size=on');
    await expect(checkVhd(path, (await stat(path)).size)).rejects.toThrow(/not a whole number of MiB/);
    const raw = await sparseFile('plain.raw', 2 * MIB, []);
    await expect(checkVhd(raw, 2 * MIB)).rejects.toThrow(/not a VHD/);
  });

  it('refuses a damaged footer and a size that does not match it', () => {
    const footer = Buffer.alloc(FOOTER_SIZE);
    footer.write('conectix', 0, 'latin1');
    footer.writeBigUInt64BE(BigInt(MIB), 48);
    footer.writeUInt32BE(2, 60);
    let sum = 0;
    for (let i = 0; i < FOOTER_SIZE; i++) if (i < 64 || i >= 68) sum += footer[i]!;
    footer.writeUInt32BE(~sum >>> 0, 64);
    const parsed = parseFooter(footer);
    expect(vhdProblem(MIB + FOOTER_SIZE, parsed)).toBeUndefined();
    expect(vhdProblem(2 * MIB + FOOTER_SIZE, parsed)).toMatch(/has 2097664 bytes but a fixed VHD of virtual size 1048576 has 1049088/);
    footer[100] = 1;
    expect(() => parseFooter(footer)).toThrow(/checksum/);
  });
});
