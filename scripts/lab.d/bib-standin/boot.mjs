// How the stand-in's disks boot, per arch, the way bib's do: GRUB on the ESP for x86_64 and
// aarch64 (EFI/BOOT/BOOT<arch>.EFI, the removable path firmware finds by itself), GRUB in a PReP
// partition for ppc64le (SLOF loads it), and nothing on s390x, whose bootloader (zipl) is an
// s390x program the stand-in cannot run: there the kernel stays in /boot with a boot entry, and
// the lab boots it with QEMU's direct kernel boot. Every GRUB is made by grub-mkimage from the
// Debian package of its platform (grub-efi-amd64-bin, grub-efi-arm64-bin, grub-ieee1275-bin).
//
// Files added to the root filesystem (as the top layer of its view, see storage.mjs):
//   /boot/grub2/grub.cfg                 the menu: the image's kernel and initramfs from /boot
//   /boot/loader/entries/farm-lab.conf   the same as a Boot Loader Specification entry
// The ESP's EFI/BOOT/grub.cfg and the PReP image's embedded config find the root filesystem by
// its UUID and load /boot/grub2/grub.cfg, as bootupd's stub configs do.
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { parseTomlLite } from './config.mjs';
import { run } from './run.mjs';

export const GRUB_DIR = '/usr/lib/grub';

/** Per arch: the firmware's partition and the GRUB platform that goes there. */
export const BOOT = {
  x86_64: { partition: 'esp', grub: 'x86_64-efi', efiFile: 'BOOTX64.EFI' },
  aarch64: { partition: 'esp', grub: 'arm64-efi', efiFile: 'BOOTAA64.EFI' },
  ppc64le: { partition: 'prep', grub: 'powerpc-ieee1275' },
  s390x: { partition: null, grub: null },
};

// Everything GRUB needs is built into its image: partition tables, the root filesystems the
// stand-in writes, finding them by UUID, and loading Linux.
const GRUB_MODULES = [
  'part_gpt', 'part_msdos', 'fat', 'ext2', 'xfs', 'btrfs', 'search', 'search_fs_uuid',
  'normal', 'configfile', 'echo', 'test', 'linux', 'gzio',
];

/** The kernel in the image's /boot (vmlinuz-VER or vmlinux-VER) with its initrd.img-VER, or null. */
export function findKernel(rootDir) {
  const boot = join(rootDir, 'boot');
  if (!existsSync(boot)) return null;
  const names = readdirSync(boot).sort();
  for (const name of names) {
    const m = /^vmlinu[xz]-(.+)$/.exec(name);
    if (!m) continue;
    const version = m[1];
    const initrd = [`initrd.img-${version}`, `initramfs-${version}.img`].find((n) => names.includes(n));
    return { version, kernel: `/boot/${name}`, initrd: initrd ? `/boot/${initrd}` : null };
  }
  return null;
}

/** Kernel arguments from bootc's /usr/lib/bootc/kargs.d/*.toml that apply to `arch`. */
export function readKargs(rootDir, arch) {
  const dir = join(rootDir, 'usr/lib/bootc/kargs.d');
  if (!existsSync(dir)) return [];
  const strings = (raw) => (typeof raw === 'string' ? [...raw.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((m) => m[1]) : []);
  const out = [];
  for (const f of readdirSync(dir).filter((n) => n.endsWith('.toml')).sort()) {
    const doc = parseTomlLite(readFileSync(join(dir, f), 'utf8'));
    const archs = strings(doc['match-architectures']);
    if (archs.length > 0 && !archs.includes(arch)) continue;
    out.push(...strings(doc.kargs));
  }
  return out;
}

/** The kernel command line: the root filesystem by UUID and type, read-write, then the image's kargs. */
export function kernelArgs(rootUuid, rootfs, kargs) {
  return [`root=UUID=${rootUuid}`, `rootfstype=${rootfs}`, 'rw', ...kargs].join(' ');
}

export function grubMenu({ kernel, rootUuid, args }) {
  return [
    '# Written by the farm lab stand-in for bootc-image-builder.',
    'set timeout=0',
    'set default=0',
    `menuentry 'farm lab (${kernel.version})' {`,
    `  search --no-floppy --fs-uuid --set=root ${rootUuid}`,
    `  linux ${kernel.kernel} ${args}`,
    ...(kernel.initrd ? [`  initrd ${kernel.initrd}`] : []),
    '}',
    '',
  ].join('\n');
}

/** The stub that finds the root filesystem and loads its /boot/grub2/grub.cfg. */
export function grubStub(rootUuid) {
  return [
    `search --no-floppy --fs-uuid --set=dev ${rootUuid}`,
    'set prefix=($dev)/boot/grub2',
    'configfile $prefix/grub.cfg',
    '',
  ].join('\n');
}

export function blsEntry({ kernel, args }) {
  return [
    `title farm lab (${kernel.version})`,
    `version ${kernel.version}`,
    `linux ${kernel.kernel}`,
    ...(kernel.initrd ? [`initrd ${kernel.initrd}`] : []),
    `options ${args}`,
    '',
  ].join('\n');
}

/**
 * Writes the files the root filesystem gains into `extraDir`; returns what the bootloader needs,
 * or null when the image has no kernel (the disk is then written without a boot entry).
 */
export function prepareBoot({ rootDir, extraDir, arch, rootUuid, rootfs, log }) {
  const kernel = findKernel(rootDir);
  if (!kernel) {
    log.info('WARNING: no kernel in the image\'s /boot (vmlinuz-* or vmlinux-*): the disk gets no boot entry and will not boot');
    return null;
  }
  const args = kernelArgs(rootUuid, rootfs, readKargs(rootDir, arch));
  log.info(`kernel ${kernel.kernel}${kernel.initrd ? `, initrd ${kernel.initrd}` : ' (no initrd)'}; options: ${args}`);
  mkdirSync(join(extraDir, 'boot/grub2'), { recursive: true });
  mkdirSync(join(extraDir, 'boot/loader/entries'), { recursive: true });
  writeFileSync(join(extraDir, 'boot/grub2/grub.cfg'), grubMenu({ kernel, rootUuid, args }));
  writeFileSync(join(extraDir, 'boot/loader/entries/farm-lab.conf'), blsEntry({ kernel, args }));
  return { kernel, args };
}

async function grubImage({ platform, out, prefix, embedded }) {
  const dir = join(GRUB_DIR, platform);
  if (!existsSync(join(dir, 'kernel.img'))) throw new Error(`GRUB's ${platform} files are missing from ${dir}: rebuild the stand-in image (scripts/lab up)`);
  const args = ['-O', platform, '-d', dir, '-o', out, '-p', prefix];
  if (embedded) args.push('-c', embedded);
  await run('grub-mkimage', [...args, ...GRUB_MODULES]);
}

/**
 * Installs the arch's bootloader into the disk at `path` (its partitions already formatted):
 * `firmwarePart` is the ESP or PReP partition from the table, `work` a scratch directory.
 */
export async function installBootloader({ path, arch, firmwarePart, rootUuid, work, log }) {
  const spec = BOOT[arch];
  if (!spec?.grub) {
    log.info(`${arch}: no bootloader installed: zipl, the s390x bootloader, is an s390x program the stand-in cannot run here; the kernel stays in /boot (entry /boot/loader/entries/farm-lab.conf) for QEMU's direct kernel boot`);
    return { bootloader: 'none', boot: 'direct-kernel' };
  }
  mkdirSync(work, { recursive: true });
  const stub = join(work, 'grub-stub.cfg');
  writeFileSync(stub, grubStub(rootUuid));
  if (spec.partition === 'esp') {
    const efi = join(work, spec.efiFile);
    await grubImage({ platform: spec.grub, out: efi, prefix: '/EFI/BOOT' });
    // mtools writes into the FAT filesystem inside the disk image at the partition's offset.
    const img = `${path}@@${firmwarePart.start}`;
    const env = { MTOOLS_SKIP_CHECK: '1' };
    await run('mmd', ['-i', img, '::/EFI', '::/EFI/BOOT'], { env });
    await run('mcopy', ['-i', img, efi, `::/EFI/BOOT/${spec.efiFile}`], { env });
    await run('mcopy', ['-i', img, stub, '::/EFI/BOOT/grub.cfg'], { env });
    log.info(`GRUB ${spec.grub} installed as EFI/BOOT/${spec.efiFile} on the ESP (grub-mkimage, modules from Debian's grub package)`);
    return { bootloader: `grub ${spec.grub}`, boot: 'firmware', efi_file: `EFI/BOOT/${spec.efiFile}` };
  }
  // PReP: the partition's content is GRUB's ELF image itself, config embedded.
  const elf = join(work, 'core.elf');
  await grubImage({ platform: spec.grub, out: elf, prefix: '', embedded: stub });
  const bytes = readFileSync(elf);
  if (bytes.length > firmwarePart.size) throw new Error(`GRUB's image (${bytes.length} bytes) does not fit the PReP partition (${firmwarePart.size} bytes)`);
  const fh = await open(path, 'r+');
  try {
    await fh.write(bytes, 0, bytes.length, firmwarePart.start);
  } finally {
    await fh.close();
  }
  log.info(`GRUB ${spec.grub} installed in the PReP partition (${bytes.length} bytes, grub-mkimage, modules from Debian's grub package)`);
  return { bootloader: `grub ${spec.grub}`, boot: 'firmware' };
}
