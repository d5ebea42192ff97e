// QEMU's direct kernel boot from the disk's own /boot, for disks without a bootloader the lab can
// make (s390x: zipl is an s390x program): the Boot Loader Specification entry the stand-in bib
// writes (/boot/loader/entries/*.conf) names the kernel, initrd and options, and debugfs
// (e2fsprogs) copies them out of the ext4 root filesystem, read-only. The disk is not changed.
import { existsSync, openSync, readSync, closeSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { run } from './run.mjs';

const LINUX_FS = '0FC63DAF-8483-4772-8E79-3D69D8477DE4';
const ENTRIES = '/boot/loader/entries';

/** A BLS entry's linux, initrd and options lines. */
export function parseBlsEntry(text) {
  const out = { linux: null, initrd: null, options: '' };
  for (const line of text.split('\n')) {
    const m = /^\s*(linux|initrd|options)\s+(.*?)\s*$/.exec(line);
    if (m) out[m[1]] = m[2];
  }
  return out;
}

function fsType(raw, offset) {
  const fd = openSync(raw, 'r');
  try {
    const b = Buffer.alloc(0x10048);
    readSync(fd, b, 0, b.length, offset);
    if (b.toString('latin1', 0, 4) === 'XFSB') return 'xfs';
    if (b.readUInt16LE(1080) === 0xef53) return 'ext4';
    if (b.toString('latin1', 0x10040, 0x10048) === '_BHRfS_M') return 'btrfs';
    return 'unknown';
  } finally {
    closeSync(fd);
  }
}

/**
 * Copies the kernel and initrd named by the disk's boot entry into `dir`; returns
 * { kernel, initrd, append } for qemuArgs. `raw` is a raw disk image (a qcow2 is converted first).
 */
export async function directKernel({ disk, format, dir }) {
  let raw = disk;
  if (format !== 'raw') {
    raw = join(dir, 'disk.raw');
    await run('qemu-img', ['convert', '-f', format, '-O', 'raw', disk, raw]);
  }
  const table = JSON.parse((await run('sfdisk', ['--json', raw])).stdout).partitiontable;
  const sector = table.sectorsize ?? 512;
  const root = table.partitions.find((p) => p.type.toUpperCase() === LINUX_FS) ?? table.partitions.at(-1);
  if (!root) throw new Error(`${disk}: no partitions`);
  const offset = root.start * sector;
  const type = fsType(raw, offset);
  if (type !== 'ext4') {
    throw new Error(`${disk}: direct kernel boot reads the kernel from an ext4 root filesystem here; this one is ${type} (build it with rootfs: ext4)`);
  }
  const dev = `${raw}?offset=${offset}`;
  const debugfs = async (cmd) => (await run('debugfs', ['-R', cmd, dev])).stdout;
  const names = (await debugfs(`ls -p ${ENTRIES}`))
    .split('\n')
    .map((l) => l.split('/')[5])
    .filter((n) => n && n.endsWith('.conf'))
    .sort();
  if (names.length === 0) throw new Error(`${disk}: no boot entry in ${ENTRIES} (the disk has no kernel to boot)`);
  const entry = parseBlsEntry(await debugfs(`cat ${ENTRIES}/${names[0]}`));
  if (!entry.linux) throw new Error(`${disk}: boot entry ${ENTRIES}/${names[0]} names no kernel (linux line)`);
  const dump = async (path, name) => {
    const out = join(dir, name);
    await debugfs(`dump ${path} ${out}`);
    if (!existsSync(out) || readFileSync(out).length === 0) throw new Error(`${disk}: cannot read ${path} from the root filesystem (debugfs)`);
    return out;
  };
  const kernel = await dump(entry.linux, 'kernel');
  const initrd = entry.initrd ? await dump(entry.initrd, 'initrd') : null;
  return { kernel, initrd, append: entry.options, entry: `${ENTRIES}/${names[0]}` };
}
