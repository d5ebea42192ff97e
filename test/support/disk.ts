// Reads a file back out of a disk image, independently of the farm's code: the partition table
// with sfdisk, the filesystem with debugfs (e2fsprogs), qcow2 through qemu-img.

import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const run = promisify(execFile);
const LINUX_FS = '0FC63DAF-8483-4772-8E79-3D69D8477DE4';

interface Partition {
  start: number;
  size: number;
  type: string;
}

export async function partitions(raw: string): Promise<{ sectorSize: number; parts: Partition[] }> {
  const { stdout } = await run('sfdisk', ['--json', raw]);
  const t = (JSON.parse(stdout) as { partitiontable: { sectorsize?: number; partitions: Partition[] } }).partitiontable;
  return { sectorSize: t.sectorsize ?? 512, parts: t.partitions };
}

/** Content of `path` inside the root (Linux filesystem) partition of a raw or qcow2 disk image. */
export async function readFromDisk(image: string, format: 'raw' | 'qcow2', path: string): Promise<string> {
  let raw = image;
  let tmp: string | undefined;
  if (format === 'qcow2') {
    tmp = await mkdtemp(join(tmpdir(), 'farm-disk-'));
    raw = join(tmp, 'disk.raw');
    await run('qemu-img', ['convert', '-f', 'qcow2', '-O', 'raw', image, raw]);
  }
  try {
    const { sectorSize, parts } = await partitions(raw);
    const root = parts.find((p) => p.type.toUpperCase() === LINUX_FS) ?? parts[parts.length - 1];
    if (!root) throw new Error(`${image}: no partitions`);
    const { stdout } = await run('debugfs', ['-R', `cat ${path}`, `${raw}?offset=${root.start * sectorSize}`]);
    return stdout;
  } finally {
    if (tmp) await rm(tmp, { recursive: true, force: true });
  }
}

export async function qemuImgFormat(image: string): Promise<string> {
  const { stdout } = await run('qemu-img', ['info', '--output=json', image]);
  return (JSON.parse(stdout) as { format: string }).format;
}

export async function sha256sum(file: string): Promise<string> {
  const { stdout } = await run('sha256sum', ['--', file]);
  return stdout.split(' ')[0]!;
}

/** Bytes actually allocated on disk (sparse files use far fewer than their size). */
export async function allocatedBytes(file: string): Promise<number> {
  const { stdout } = await run('stat', ['-c', '%b %B', '--', file]);
  const [blocks, unit] = stdout.trim().split(' ').map(Number);
  return blocks! * unit!;
}
