// QEMU's command line for a smoke boot of each arch, as its platform boots: the machine, the
// firmware (OVMF for x86_64, AAVMF/QEMU_EFI for aarch64, SLOF for ppc64le pseries, the s390-ccw
// BIOS for s390x), virtio disk and network, the serial console on stdout, KVM only where it can
// really run the guest. Pure: the facts (files found, /dev/kvm) come from the worker (./smoke.ts).

import type { Arch } from '../../src/core/arch.ts';

export interface ArchQemu {
  bin: string;
  /** Debian's package (and Fedora's) that has the binary. */
  pkg: string;
  bus: 'pci' | 'ccw';
  memory: number;
  /** The serial console device the kernel writes to (for direct kernel boot's command line). */
  console: string;
}

export const QEMU: Record<Arch, ArchQemu> = {
  x86_64: { bin: 'qemu-system-x86_64', pkg: 'qemu-system-x86 (Fedora: qemu-system-x86-core)', bus: 'pci', memory: 512, console: 'ttyS0' },
  aarch64: { bin: 'qemu-system-aarch64', pkg: 'qemu-system-arm (Fedora: qemu-system-aarch64-core)', bus: 'pci', memory: 512, console: 'ttyAMA0' },
  ppc64le: { bin: 'qemu-system-ppc64', pkg: 'qemu-system-ppc (Fedora: qemu-system-ppc-core)', bus: 'pci', memory: 1024, console: 'hvc0' },
  s390x: { bin: 'qemu-system-s390x', pkg: 'qemu-system-misc (Fedora: qemu-system-s390x-core)', bus: 'ccw', memory: 512, console: 'ttysclp0' },
};

/** Firmware files to look for on the worker: Debian's paths first, then Fedora's and QEMU's. */
export const FIRMWARE: Record<Arch, { code?: string[]; vars?: string[]; rom?: string[]; pkg: string }> = {
  x86_64: {
    code: ['/usr/share/OVMF/OVMF_CODE_4M.fd', '/usr/share/OVMF/OVMF_CODE.fd', '/usr/share/edk2/ovmf/OVMF_CODE.fd', '/usr/share/qemu/edk2-x86_64-code.fd'],
    vars: ['/usr/share/OVMF/OVMF_VARS_4M.fd', '/usr/share/OVMF/OVMF_VARS.fd', '/usr/share/edk2/ovmf/OVMF_VARS.fd', '/usr/share/qemu/edk2-i386-vars.fd'],
    pkg: 'ovmf (Fedora: edk2-ovmf)',
  },
  aarch64: {
    code: ['/usr/share/AAVMF/AAVMF_CODE.fd', '/usr/share/edk2/aarch64/QEMU_EFI-pflash.raw', '/usr/share/qemu/edk2-aarch64-code.fd'],
    vars: ['/usr/share/AAVMF/AAVMF_VARS.fd', '/usr/share/edk2/aarch64/vars-template-pflash.raw', '/usr/share/qemu/edk2-arm-vars.fd'],
    pkg: 'qemu-efi-aarch64 (Fedora: edk2-aarch64)',
  },
  ppc64le: { rom: ['/usr/share/qemu/slof.bin', '/usr/share/qemu-kvm/slof.bin', '/usr/share/SLOF/slof.bin'], pkg: 'qemu-system-data (Fedora: SLOF)' },
  s390x: { rom: ['/usr/share/qemu/s390-ccw.img', '/usr/share/qemu-kvm/s390-ccw.img'], pkg: 'qemu-system-data (Fedora: qemu-system-s390x-core)' },
};

export type Firmware = { kind: 'uefi'; code: string; vars: string } | { kind: 'slof' | 's390-ccw'; rom: string };

/** What the worker said about KVM (see ACCEL_PROBE in ./smoke.ts). */
export interface KvmFacts {
  devKvm: boolean;
  /** x86 only: kvm_intel or kvm_amd loaded (a /dev/kvm from kvm_pvm runs no firmware). */
  hwModule: boolean;
  qemuHasKvm: boolean;
}

/** KVM or TCG, and why: said in the log. */
export function chooseAccel(arch: Arch, f: KvmFacts): { accel: 'kvm' | 'tcg'; why: string } {
  if (!f.devKvm) return { accel: 'tcg', why: 'TCG: /dev/kvm is missing or not writable' };
  if (arch === 'x86_64' && !f.hwModule) return { accel: 'tcg', why: 'TCG: /dev/kvm exists but neither kvm_intel nor kvm_amd is loaded' };
  if (!f.qemuHasKvm) return { accel: 'tcg', why: `TCG: ${QEMU[arch].bin} has no KVM for this machine` };
  return { accel: 'kvm', why: 'KVM: /dev/kvm is usable' };
}

export interface QemuPlan {
  arch: Arch;
  accel: 'kvm' | 'tcg';
  disk: string;
  format: string;
  seed: string;
  sshPort: number;
  memory?: number | undefined;
  fw: Firmware;
  /** A writable copy of the UEFI variable store (UEFI only). */
  varsFile?: string | undefined;
  /** Direct kernel boot: the kernel, initrd and command line from the disk's boot entry. */
  direct?: { kernel: string; initrd?: string | undefined; append: string } | undefined;
  pidFile: string;
}

function blockDevice(bus: 'pci' | 'ccw', drive: string, extra = ''): string[] {
  return ['-device', `${bus === 'ccw' ? 'virtio-blk-ccw' : 'virtio-blk-pci'},drive=${drive}${extra}`];
}

/** A file path QEMU's option syntax reads unchanged (',' would split the option). */
function qemuPath(p: string): string {
  if (p.includes(',')) throw new Error(`path ${p} contains ',', which QEMU's -drive cannot take`);
  return p;
}

/**
 * QEMU's argv. The disk is attached with snapshot=on: writes go to a temporary file (TMPDIR), the
 * image is never modified. SSH is forwarded from the worker's 127.0.0.1:sshPort only.
 */
export function qemuArgv(p: QemuPlan): string[] {
  const q = QEMU[p.arch];
  const args = [q.bin, '-nodefaults', '-no-user-config', '-display', 'none', '-serial', 'stdio', '-monitor', 'none', '-no-reboot'];
  args.push('-pidfile', qemuPath(p.pidFile), '-m', String(p.memory ?? q.memory), '-smp', '1', '-accel', p.accel);
  const kvm = p.accel === 'kvm';
  switch (p.arch) {
    case 'x86_64':
      args.push('-M', 'q35', '-cpu', kvm ? 'host' : 'max');
      break;
    case 'aarch64':
      // TCG's architected pointer-authentication cipher more than doubles the boot time.
      args.push('-M', 'virt', '-cpu', kvm ? 'host' : 'max,pauth-impdef=on');
      break;
    case 'ppc64le':
      // TCG emulates none of the Spectre mitigations the default pseries machine asks for.
      args.push('-M', kvm ? 'pseries' : 'pseries,cap-cfpc=broken,cap-sbbc=broken,cap-ibs=broken,cap-ccf-assist=off');
      break;
    case 's390x':
      args.push('-M', 's390-ccw-virtio', ...(kvm ? ['-cpu', 'host'] : []));
      break;
  }
  if (p.fw.kind === 'uefi') {
    if (!p.varsFile) throw new Error('UEFI boot needs a copy of the variable store');
    args.push('-drive', `if=pflash,format=raw,unit=0,readonly=on,file=${qemuPath(p.fw.code)}`, '-drive', `if=pflash,format=raw,unit=1,file=${qemuPath(p.varsFile)}`);
  } else {
    args.push('-bios', qemuPath(p.fw.rom));
  }
  if (p.direct) {
    args.push('-kernel', qemuPath(p.direct.kernel), '-append', p.direct.append);
    if (p.direct.initrd) args.push('-initrd', qemuPath(p.direct.initrd));
  }
  args.push('-drive', `file=${qemuPath(p.disk)},format=${p.format},if=none,id=disk0,snapshot=on`, ...blockDevice(q.bus, 'disk0', ',bootindex=0'));
  args.push('-drive', `file=${qemuPath(p.seed)},format=raw,if=none,id=seed0,readonly=on`, ...blockDevice(q.bus, 'seed0'));
  args.push('-netdev', `user,id=net0,hostfwd=tcp:127.0.0.1:${p.sshPort}-:22`);
  // romfile= : no iPXE option ROM (the firmware boots from the disk; Debian ships it apart).
  args.push('-device', q.bus === 'ccw' ? 'virtio-net-ccw,netdev=net0' : 'virtio-net-pci,netdev=net0,romfile=');
  return args;
}

/** QEMU's disk format for a disk file. */
export function diskFormat(path: string): string {
  if (path.endsWith('.qcow2')) return 'qcow2';
  if (path.endsWith('.vhd')) return 'vpc';
  if (path.endsWith('.vmdk')) return 'vmdk';
  return 'raw';
}

/**
 * The disks to boot: disks with the same file name (ami and raw both write disk.raw, from the
 * same image) are one disk, booted once; the verdict is theirs together. Archives (gce) are not
 * bootable disks and are skipped.
 */
export function distinctDisks<D extends { path: string; type: string }>(disks: readonly D[]): Array<{ boot: D; types: string[] }> {
  const out: Array<{ boot: D; types: string[] }> = [];
  for (const d of disks) {
    if (d.path.endsWith('.tar.gz')) continue;
    const base = d.path.split('/').at(-1);
    const same = out.find((o) => o.boot.path.split('/').at(-1) === base);
    if (same) same.types.push(d.type);
    else out.push({ boot: d, types: [d.type] });
  }
  return out;
}

/** A BLS entry's linux, initrd and options lines. */
export function parseBlsEntry(text: string): { linux: string | null; initrd: string | null; options: string } {
  const out: { linux: string | null; initrd: string | null; options: string } = { linux: null, initrd: null, options: '' };
  for (const line of text.split('\n')) {
    const m = /^\s*(linux|initrd|options)\s+(.*?)\s*$/.exec(line);
    if (m) (out as Record<string, string | null>)[m[1]!] = m[2]!;
  }
  return out;
}
