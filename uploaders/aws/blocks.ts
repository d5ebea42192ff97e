// Splitting a raw disk into EBS snapshot blocks: 512 KiB each, all-zero blocks skipped (a sparse
// raw is mostly holes), and the LINEAR aggregate checksum CompleteSnapshot verifies.

import { createHash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';

/** EBS snapshot block size (StartSnapshot answers BlockSize 524288). */
export const BLOCK_SIZE = 512 * 1024;
export const GIB = 1024 ** 3;
// Node has no lseek(SEEK_DATA/SEEK_HOLE), so holes are found by reading them: the kernel fills
// holes with zeros without touching the disk, and big reads keep syscalls few. 8 MiB = 16 blocks.
export const READ_CHUNK = 8 * 1024 * 1024;

const ZERO = Buffer.alloc(READ_CHUNK);

/** True when every byte is zero (memcmp against a zero buffer, not a byte loop). */
export function isZero(buf: Uint8Array): boolean {
  for (let off = 0; off < buf.length; off += ZERO.length) {
    const n = Math.min(ZERO.length, buf.length - off);
    if (Buffer.compare(buf.subarray(off, off + n), ZERO.subarray(0, n)) !== 0) return false;
  }
  return true;
}

/** StartSnapshot's VolumeSize: the image's size rounded up to whole GiB (at least 1). */
export function volumeSizeGiB(bytes: number): number {
  return Math.max(1, Math.ceil(bytes / GIB));
}

export function blockCount(bytes: number): number {
  return Math.ceil(bytes / BLOCK_SIZE);
}

export interface Block {
  index: number;
  /** Bytes of the image this block covers (the last one may be short). */
  length: number;
  /** Full BLOCK_SIZE data (zero-padded at the end of the image), or undefined for a zero block. */
  data: Buffer | undefined;
}

/**
 * Yields every block of the first `size` bytes of `fh` in order. Non-zero blocks get their own
 * buffer (the read buffer is reused), so memory stays bounded by what the consumer holds.
 */
export async function* readBlocks(fh: FileHandle, size: number, chunkSize = READ_CHUNK): AsyncGenerator<Block> {
  if (chunkSize % BLOCK_SIZE !== 0) throw new Error('chunk size must be a multiple of the block size');
  const chunk = Buffer.allocUnsafe(chunkSize);
  for (let pos = 0; pos < size; pos += chunkSize) {
    const want = Math.min(chunkSize, size - pos);
    let got = 0;
    while (got < want) {
      const { bytesRead } = await fh.read(chunk, got, want - got, pos + got);
      if (bytesRead === 0) throw new Error(`the image ended at byte ${pos + got}, before its size ${size}`);
      got += bytesRead;
    }
    const view = chunk.subarray(0, want);
    if (isZero(view)) {
      for (let off = 0; off < want; off += BLOCK_SIZE) {
        yield { index: (pos + off) / BLOCK_SIZE, length: Math.min(BLOCK_SIZE, want - off), data: undefined };
      }
      continue;
    }
    for (let off = 0; off < want; off += BLOCK_SIZE) {
      const part = view.subarray(off, Math.min(off + BLOCK_SIZE, want));
      const index = (pos + off) / BLOCK_SIZE;
      if (isZero(part)) {
        yield { index, length: part.length, data: undefined };
        continue;
      }
      const data = Buffer.allocUnsafe(BLOCK_SIZE);
      part.copy(data);
      if (part.length < BLOCK_SIZE) data.fill(0, part.length); // pads a short last block
      yield { index, length: part.length, data };
    }
  }
}

export function sha256(data: Uint8Array): Buffer {
  return createHash('sha256').update(data).digest();
}

/**
 * CompleteSnapshot's LINEAR aggregate: SHA256 over the raw SHA256 digests of the written blocks,
 * concatenated in ascending block index order, base64-encoded.
 */
export function linearChecksum(digests: ReadonlyMap<number, Uint8Array>): string {
  const h = createHash('sha256');
  for (const index of [...digests.keys()].sort((a, b) => a - b)) h.update(digests.get(index)!);
  return h.digest('base64');
}
