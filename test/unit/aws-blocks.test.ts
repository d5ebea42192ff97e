import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FarmError } from '../../src/core/errors.ts';
import { BLOCK_SIZE, GIB, blockCount, isZero, linearChecksum, readBlocks, sha256, volumeSizeGiB } from '../../uploaders/aws/blocks.ts';
import { awsArchitecture } from '../../uploaders/aws/index.ts';
import { partSizeFor } from '../../uploaders/aws/s3-import.ts';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'farm-aws-blocks-'));
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

async function collect(path: string, size: number, chunk?: number) {
  const fh = await open(path, 'r');
  try {
    const out = [];
    for await (const b of readBlocks(fh, size, chunk)) out.push(b);
    return out;
  } finally {
    await fh.close();
  }
}

describe('readBlocks', () => {
  it('splits into 512 KiB blocks and hands out data only for non-zero ones', async () => {
    const size = 10 * BLOCK_SIZE;
    const one = Buffer.alloc(10, 0xab);
    // a byte at the very end of block 3 and one at the start of block 7
    const path = await sparseFile('a.raw', size, [
      [4 * BLOCK_SIZE - 10, one],
      [7 * BLOCK_SIZE, one],
    ]);
    for (const chunk of [BLOCK_SIZE, 2 * BLOCK_SIZE, 16 * BLOCK_SIZE]) {
      const blocks = await collect(path, size, chunk);
      expect(blocks.map((b) => b.index)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
      expect(blocks.filter((b) => b.data).map((b) => b.index)).toEqual([3, 7]);
      expect(blocks.every((b) => b.length === BLOCK_SIZE)).toBe(true);
      const b3 = blocks[3]!.data!;
      expect(b3.length).toBe(BLOCK_SIZE);
      expect(b3.subarray(BLOCK_SIZE - 10).equals(one)).toBe(true);
      expect(isZero(b3.subarray(0, BLOCK_SIZE - 10))).toBe(true);
    }
  });

  it('pads a short last block with zeros and reports its real length', async () => {
    const size = 2 * BLOCK_SIZE + 1000;
    const tail = Buffer.alloc(1000, 0x5a);
    const path = await sparseFile('b.raw', size, [[2 * BLOCK_SIZE, tail]]);
    const blocks = await collect(path, size);
    expect(blocks).toHaveLength(3);
    expect(blocks[2]!.length).toBe(1000);
    expect(blocks[2]!.data!.length).toBe(BLOCK_SIZE);
    expect(blocks[2]!.data!.subarray(0, 1000).equals(tail)).toBe(true);
    expect(isZero(blocks[2]!.data!.subarray(1000))).toBe(true);
    expect(blocks.reduce((n, b) => n + b.length, 0)).toBe(size);
  });

  it('fails when the file is shorter than the size it should have', async () => {
    const path = await sparseFile('c.raw', BLOCK_SIZE, []);
    await expect(collect(path, 2 * BLOCK_SIZE)).rejects.toThrow(/ended at byte 524288/);
  });

  it('hands each non-zero block its own buffer', async () => {
    const path = await sparseFile('d.raw', 4 * BLOCK_SIZE, [
      [0, Buffer.alloc(BLOCK_SIZE, 1)],
      [BLOCK_SIZE, Buffer.alloc(BLOCK_SIZE, 2)],
    ]);
    const blocks = await collect(path, 4 * BLOCK_SIZE, 4 * BLOCK_SIZE);
    expect(blocks[0]!.data![0]).toBe(1);
    expect(blocks[1]!.data![0]).toBe(2);
    expect(blocks[0]!.data!.buffer).not.toBe(blocks[1]!.data!.buffer);
  });
});

describe('isZero', () => {
  it('finds a single non-zero byte anywhere', () => {
    const big = Buffer.alloc(20 * 1024 * 1024);
    expect(isZero(big)).toBe(true);
    big[big.length - 1] = 1;
    expect(isZero(big)).toBe(false);
    expect(isZero(new Uint8Array(0))).toBe(true);
  });
});

describe('linearChecksum', () => {
  it('matches a vector computed independently (Python hashlib)', () => {
    const d0 = sha256(Buffer.alloc(BLOCK_SIZE, 1));
    const d5 = sha256(Buffer.alloc(BLOCK_SIZE, 2));
    expect(d0.toString('base64')).toBe('M6FQvOsTwamSIx5ltPrRaBUhL8Bs20CJltMu6yzvnrs=');
    expect(d5.toString('base64')).toBe('Ioxb8/mw3beyMReNfgZ6/5ZqGRsfzT7Q4uNx7KM/zfw=');
    // inserted out of order: the aggregate follows block index order, not insertion order
    const digests = new Map([
      [5, d5],
      [0, d0],
    ]);
    expect(linearChecksum(digests)).toBe('fccGN1xyY7l5uqsw58BLULbsU8thbz9pDvzr9oCk5yk=');
    expect(linearChecksum(new Map())).toBe('47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=');
  });

  it('sorts indices numerically, not as strings', () => {
    const a = sha256(Buffer.from('a'));
    const b = sha256(Buffer.from('b'));
    const expected = sha256(Buffer.concat([a, b])).toString('base64');
    expect(linearChecksum(new Map([[10, b], [9, a]]))).toBe(expected);
  });
});

describe('sizes', () => {
  it('rounds volume sizes up to whole GiB', () => {
    expect(volumeSizeGiB(1)).toBe(1);
    expect(volumeSizeGiB(GIB)).toBe(1);
    expect(volumeSizeGiB(GIB + 1)).toBe(2);
    expect(volumeSizeGiB(10 * GIB - 512)).toBe(10);
    expect(blockCount(GIB)).toBe(2048);
    expect(blockCount(BLOCK_SIZE + 1)).toBe(2);
  });

  it('keeps multipart uploads within 10,000 parts', () => {
    const mib = 1024 * 1024;
    expect(partSizeFor(GIB, 64 * mib)).toBe(64 * mib);
    expect(partSizeFor(1024 * GIB, 64 * mib)).toBeGreaterThanOrEqual(Math.ceil((1024 * GIB) / 10_000));
    expect(partSizeFor(1, 1)).toBe(5 * mib);
  });
});

describe('awsArchitecture', () => {
  it('maps the build arch, never the host', () => {
    expect(awsArchitecture({ arch: 'x86_64' })).toBe('x86_64');
    expect(awsArchitecture({ arch: 'aarch64' })).toBe('arm64');
  });
  it('refuses arches AWS has no AMIs for', () => {
    expect(() => awsArchitecture({ arch: 'ppc64le' })).toThrow(FarmError);
    expect(() => awsArchitecture({ arch: 's390x' })).toThrow(/no s390x AMIs/);
  });
});
