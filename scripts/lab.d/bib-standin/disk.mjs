// Writes a real, sparse GPT disk laid out for the arch's firmware, as bib does: an EFI System
// partition (FAT16; x86_64, aarch64) or a PReP boot partition (ppc64le), or none (s390x), then a
// Linux root partition whose filesystem holds the image's files; boot.mjs fills the first. No
// loop devices: mkfs tools write into the file at the partition's offset (mke2fs -E offset,
// mkfs.fat --offset) or into a side file that is copied in sparsely (mkfs.btrfs --rootdir and
// mkfs.xfs -p, see xfs-proto.mjs, have no offset).
import { open, rm, truncate, writeFile } from 'node:fs/promises';
import { lstatSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { run } from './run.mjs';
import { xfsProto } from './xfs-proto.mjs';

const SECTOR = 512;
const MiB = 2 ** 20;
const GiB = 2 ** 30;
const ESP_SIZE = 32 * MiB;
const PREP_SIZE = 4 * MiB; // bib's size; GRUB's ieee1275 image is about 0.5 MiB
const FIRST_LBA = 2048; // 1 MiB alignment, as partitioning tools do
const DEFAULT_DISK = GiB;
const XFS_MIN = 300 * MiB; // mkfs.xfs refuses smaller filesystems

export const GUID = {
  esp: 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B',
  prep: '9E1A2D38-C612-4316-AA26-8B49521E5A8B',
  linux: '0FC63DAF-8483-4772-8E79-3D69D8477DE4',
};

const FIRMWARE_PARTS = {
  esp: { size: ESP_SIZE, name: 'EFI-SYSTEM', filesystem: 'vfat', mountpoint: '/boot/efi' },
  prep: { size: PREP_SIZE, name: 'PowerPC-PReP-boot', filesystem: null, mountpoint: null },
};

/** Bytes of file data under dir (apparent sizes, directories counted as one block). */
export function contentSize(dir) {
  let total = 0;
  const stack = [dir];
  while (stack.length > 0) {
    const d = stack.pop();
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) {
        total += 4096;
        stack.push(p);
      } else {
        total += e.isFile() ? lstatSync(p).size : 0;
      }
    }
  }
  return total;
}

const alignMiB = (n) => Math.ceil(n / MiB) * MiB;

/**
 * Disk size: 1 GiB by default, or room for config.toml's minsize of "/"; never less than twice
 * the image's content (bib sizes disks from the container too).
 */
export function diskSize(content, rootMinsize) {
  const overhead = FIRST_LBA * SECTOR + ESP_SIZE + MiB; // GPT, alignment, ESP, backup GPT
  const needed = alignMiB(2 * content + 64 * MiB) + overhead;
  const wanted = rootMinsize === null ? DEFAULT_DISK : alignMiB(rootMinsize) + overhead;
  return Math.max(needed, wanted);
}

async function createSparse(path, size) {
  const fh = await open(path, 'w');
  await fh.close();
  await truncate(path, size);
}

/** Copies src into dst at offset, skipping all-zero blocks so holes stay holes. */
async function copySparse(src, dst, offset) {
  const BLOCK = 4 * MiB;
  const zero = Buffer.alloc(BLOCK);
  const buf = Buffer.alloc(BLOCK);
  const s = await open(src, 'r');
  const d = await open(dst, 'r+');
  try {
    for (let pos = 0; ; pos += BLOCK) {
      const { bytesRead } = await s.read(buf, 0, BLOCK, pos);
      if (bytesRead === 0) break;
      const chunk = buf.subarray(0, bytesRead);
      if (!chunk.equals(zero.subarray(0, bytesRead))) await d.write(chunk, 0, bytesRead, offset + pos);
    }
  } finally {
    await s.close();
    await d.close();
  }
}

/**
 * Creates the disk at path from the root filesystem tree rootDir, with the firmware partition
 * `firmware` ('esp', 'prep' or null) first and the root filesystem labelled "root" with UUID
 * `rootUuid`. Returns the partition table as sfdisk reads it back, with each partition's
 * filesystem (byte offsets and sizes).
 */
export async function makeDisk({ path, size, rootDir, rootfs, rootUuid, firmware, log }) {
  await createSparse(path, size);
  const fw = firmware ? FIRMWARE_PARTS[firmware] : null;
  const lines = ['label: gpt', `first-lba: ${FIRST_LBA}`];
  let next = FIRST_LBA;
  if (fw) {
    lines.push(`start=${next}, size=${fw.size / SECTOR}, type=${GUID[firmware]}, name="${fw.name}"`);
    next += fw.size / SECTOR;
  }
  lines.push(`start=${next}, type=${GUID.linux}, name="root"`, '');
  const script = lines.join('\n');
  log.debug(`sfdisk script:\n${script}`);
  await run('sfdisk', ['--quiet', '--no-reread', '--no-tell-kernel', path], { input: script });
  const table = JSON.parse((await run('sfdisk', ['--json', path])).stdout).partitiontable;
  const parts = table.partitions ?? [];
  const fwPart = fw ? parts[0] : null;
  const root = parts[fw ? 1 : 0];
  if (!root || (fw && !fwPart)) throw new Error(`sfdisk did not create the ${fw ? 'two partitions' : 'root partition'} on ${path}`);

  if (firmware === 'esp') {
    log.info(`Creating EFI System partition (vfat, ${(fwPart.size * SECTOR) / MiB} MiB)`);
    await run('mkfs.vfat', ['-F', '16', '-n', 'EFI-SYSTEM', '--offset', String(fwPart.start), path, String((fwPart.size * SECTOR) / 1024)]);
  } else if (firmware === 'prep') {
    log.info(`Creating PReP boot partition (${(fwPart.size * SECTOR) / MiB} MiB)`);
  }

  const rootBytes = root.size * SECTOR;
  log.info(`Creating ${rootfs} root filesystem (${Math.floor(rootBytes / MiB)} MiB, UUID ${rootUuid}) with the image's files`);
  if (rootfs === 'ext4') {
    await run('mke2fs', [
      '-q', '-F', '-t', 'ext4', '-L', 'root', '-U', rootUuid, '-d', rootDir,
      '-E', `offset=${root.start * SECTOR}`, path, `${Math.floor(rootBytes / 1024)}k`,
    ]);
  } else if (rootfs === 'btrfs') {
    const side = `${path}.btrfs`;
    try {
      await createSparse(side, rootBytes);
      await run('mkfs.btrfs', ['-q', '-f', '-L', 'root', '-U', rootUuid, '--rootdir', rootDir, side]);
      await copySparse(side, path, root.start * SECTOR);
    } finally {
      await rm(side, { force: true });
    }
  } else if (rootfs === 'xfs') {
    if (rootBytes < XFS_MIN) {
      throw new Error(`the root partition (${Math.floor(rootBytes / MiB)} MiB) is below xfs's minimum of ${XFS_MIN / MiB} MiB; raise the root minsize`);
    }
    const side = `${path}.xfs`;
    const proto = `${path}.xfs-proto`;
    try {
      await createSparse(side, rootBytes);
      await writeFile(proto, xfsProto(rootDir));
      await run('mkfs.xfs', ['-q', '-f', '-L', 'root', '-m', `uuid=${rootUuid}`, '-p', proto, side]);
      await copySparse(side, path, root.start * SECTOR);
    } finally {
      await rm(side, { force: true });
      await rm(proto, { force: true });
    }
  } else {
    throw new Error(`the farm lab stand-in supports --rootfs ext4|xfs|btrfs, not ${rootfs}`);
  }

  const entry = (p, number, extra) => ({ number, name: p.name, type: p.type, uuid: p.uuid, start: p.start * SECTOR, size: p.size * SECTOR, ...extra });
  return {
    type: 'gpt',
    uuid: table.id,
    sector_size: table.sectorsize ?? SECTOR,
    partitions: [
      ...(fw ? [entry(fwPart, 1, { filesystem: fw.filesystem, mountpoint: fw.mountpoint })] : []),
      entry(root, fw ? 2 : 1, { filesystem: rootfs, filesystem_uuid: rootUuid, mountpoint: '/' }),
    ],
  };
}

/** Converts the raw disk to another format with qemu-img (or a tarball for gce). */
export async function convert(raw, type, dest) {
  switch (type) {
    case 'qcow2':
      return run('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', raw, dest]);
    case 'vmdk':
      return run('qemu-img', ['convert', '-f', 'raw', '-O', 'vmdk', '-o', 'subformat=streamOptimized', raw, dest]);
    case 'vhd':
      return run('qemu-img', ['convert', '-f', 'raw', '-O', 'vpc', '-o', 'subformat=fixed,force_size=on', raw, dest]);
    case 'gce': {
      // GCE wants a gzip'd tar with the disk named disk.raw.
      const dir = raw.slice(0, raw.lastIndexOf('/'));
      const name = raw.slice(raw.lastIndexOf('/') + 1);
      if (name !== 'disk.raw') throw new Error(`gce export needs the raw disk named disk.raw, got ${name}`);
      return run('tar', ['-C', dir, '-czf', dest, 'disk.raw']);
    }
    default:
      throw new Error(`no conversion to ${type}`);
  }
}
