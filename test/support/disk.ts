// Reads a file back out of a disk image, independently of the farm's code: the partition table
// with sfdisk, the filesystem with debugfs (e2fsprogs) or xfs_db (xfsprogs), qcow2 through qemu-img.

import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtemp, open, rm } from 'node:fs/promises';
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
    const offset = root.start * sectorSize;
    if ((await rootFsType(raw, offset)) === 'xfs') return await readFromXfs(raw, offset, root.size * sectorSize, path);
    const { stdout } = await run('debugfs', ['-R', `cat ${path}`, `${raw}?offset=${offset}`]);
    return stdout;
  } finally {
    if (tmp) await rm(tmp, { recursive: true, force: true });
  }
}

/** The filesystem at `offset` by its superblock magic (XFS: "XFSB" at 0; else ext4 for debugfs). */
async function rootFsType(raw: string, offset: number): Promise<'xfs' | 'ext4'> {
  const fh = await open(raw, 'r');
  try {
    const magic = Buffer.alloc(4);
    await fh.read(magic, 0, 4, offset);
    return magic.toString('latin1') === 'XFSB' ? 'xfs' : 'ext4';
  } finally {
    await fh.close();
  }
}

/** A file out of an XFS filesystem with xfs_db (read-only): its extents, read at their addresses. */
async function readFromXfs(raw: string, offset: number, size: number, path: string): Promise<string> {
  const tmp = await mkdtemp(join(tmpdir(), 'farm-xfs-'));
  const part = join(tmp, 'root.xfs');
  try {
    await run('dd', [`if=${raw}`, `of=${part}`, 'bs=1M', `skip=${offset}`, `count=${size}`, 'iflag=skip_bytes,count_bytes', 'conv=sparse', 'status=none']);
    const db = async (...cmds: string[]) => (await run('xfs_db', ['-r', ...cmds.flatMap((c) => ['-c', c]), part])).stdout;
    const block = Number(/blocksize = (\d+)/.exec(await db('sb 0', 'p blocksize'))![1]);
    const info = await db(`path ${path}`, 'p core.size', 'bmap');
    const fileSize = Number(/core\.size = (\d+)/.exec(info)?.[1] ?? Number.NaN);
    if (!Number.isFinite(fileSize)) throw new Error(`xfs_db found no ${path}: ${info}`);
    const content = Buffer.alloc(fileSize);
    const fh = await open(part, 'r');
    try {
      for (const m of info.matchAll(/data offset (\d+) startblock (\d+) \(\S+\) count (\d+)/g)) {
        const at = Number(/\((\d+)\)/.exec(await db(`convert fsb ${m[2]} byte`))![1]);
        const fileOffset = Number(m[1]) * block;
        const length = Math.min(Number(m[3]) * block, fileSize - fileOffset);
        if (length > 0) await fh.read(content, fileOffset, length, at);
      }
    } finally {
      await fh.close();
    }
    return content.toString('utf8');
  } finally {
    await rm(tmp, { recursive: true, force: true });
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
