// The checks Azure makes of a VHD, made before anything is created: a fixed-format VHD (the data,
// then a 512-byte footer) whose virtual size is a whole number of MiB. Azure refuses anything
// else only after the upload; qemu-img writes this with -O vpc -o subformat=fixed,force_size=on.
//
// Footer layout (Microsoft's "Virtual Hard Disk Image Format Specification"): cookie "conectix"
// at 0, data offset at 16 (all ones for fixed disks), current size at 48 (big-endian u64), disk
// type at 60 (2 fixed, 3 dynamic, 4 differencing), checksum at 64: the one's complement of the
// sum of every footer byte except the checksum's own four.

import { open } from 'node:fs/promises';

export const SECTOR = 512;
export const FOOTER_SIZE = 512;
export const MIB = 1024 * 1024;
const COOKIE = 'conectix';
const DISK_TYPES: Record<number, string> = { 2: 'fixed', 3: 'dynamic', 4: 'differencing' };

export interface VhdFooter {
  /** The disk's virtual size (bytes the guest sees). */
  currentSize: number;
  diskType: number;
}

/** Parses a footer; throws naming what is wrong. */
export function parseFooter(footer: Uint8Array): VhdFooter {
  const buf = Buffer.from(footer.buffer, footer.byteOffset, footer.byteLength);
  if (buf.length !== FOOTER_SIZE) throw new Error(`a VHD footer has ${FOOTER_SIZE} bytes, got ${buf.length}`);
  if (buf.toString('latin1', 0, 8) !== COOKIE) throw new Error(`the last 512 bytes do not start with the VHD cookie "${COOKIE}": not a VHD`);
  let sum = 0;
  for (let i = 0; i < FOOTER_SIZE; i++) if (i < 64 || i >= 68) sum += buf[i]!;
  const expected = ~sum >>> 0;
  const stored = buf.readUInt32BE(64);
  if (stored !== expected) throw new Error(`the VHD footer's checksum is ${stored.toString(16)}, its bytes give ${expected.toString(16)}: the file is damaged`);
  const currentSize = Number(buf.readBigUInt64BE(48));
  return { currentSize, diskType: buf.readUInt32BE(60) };
}

/** Why Azure would refuse a VHD of this file size with this footer, or undefined. */
export function vhdProblem(fileSize: number, footer: VhdFooter): string | undefined {
  if (footer.diskType !== 2) {
    return `it is a ${DISK_TYPES[footer.diskType] ?? `type ${footer.diskType}`} VHD; Azure takes fixed VHDs only (qemu-img convert -O vpc -o subformat=fixed,force_size=on)`;
  }
  if (fileSize !== footer.currentSize + FOOTER_SIZE) {
    return `the file has ${fileSize} bytes but a fixed VHD of virtual size ${footer.currentSize} has ${footer.currentSize + FOOTER_SIZE}`;
  }
  if (footer.currentSize % MIB !== 0) {
    return `its virtual size ${footer.currentSize} is not a whole number of MiB, which Azure requires (round the disk up to ${Math.ceil(footer.currentSize / MIB) * MIB})`;
  }
  return undefined;
}

/** Reads and checks the VHD at `path` of `size` bytes; throws naming the problem. */
export async function checkVhd(path: string, size: number): Promise<VhdFooter> {
  if (size < FOOTER_SIZE || size % SECTOR !== 0) throw new Error(`${path} has ${size} bytes, not a whole number of 512-byte sectors: not a fixed VHD`);
  const fh = await open(path, 'r');
  try {
    const footer = Buffer.alloc(FOOTER_SIZE);
    const { bytesRead } = await fh.read(footer, 0, FOOTER_SIZE, size - FOOTER_SIZE);
    if (bytesRead !== FOOTER_SIZE) throw new Error(`${path} ended before its recorded size ${size}`);
    const parsed = parseFooter(footer);
    const problem = vhdProblem(size, parsed);
    if (problem) throw new Error(`${path}: ${problem}`);
    return parsed;
  } finally {
    await fh.close();
  }
}
