// QEMU's command line for booting a disk image of each arch the way its platform boots it: the
// machine, the firmware (OVMF for x86_64, AAVMF/QEMU_EFI for aarch64, SLOF for ppc64le pseries,
// the s390-ccw BIOS for s390x), virtio disks and network, the serial console on stdout, and KVM
// only where it can really run the guest.
import { accessSync, constants, existsSync } from 'node:fs';
import { arch as nodeArch } from 'node:os';
import { run } from './run.mjs';

const NODE_TO_ARCH = { x64: 'x86_64', arm64: 'aarch64', ppc64: 'ppc64le', s390x: 's390x' };

/** This machine's arch in uname -m's names (node's, so a lab host's pretend `uname` cannot fool it). */
export function hostArch() {
  return NODE_TO_ARCH[nodeArch()] ?? nodeArch();
}

// Firmware files: Debian's paths first, then Fedora's and upstream QEMU's.
const FIRMWARE = {
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

export const QEMU = {
  x86_64: { bin: 'qemu-system-x86_64', pkg: 'qemu-system-x86', bus: 'pci', memory: 512 },
  aarch64: { bin: 'qemu-system-aarch64', pkg: 'qemu-system-arm', bus: 'pci', memory: 512 },
  ppc64le: { bin: 'qemu-system-ppc64', pkg: 'qemu-system-ppc', bus: 'pci', memory: 1024 },
  s390x: { bin: 'qemu-system-s390x', pkg: 'qemu-system-misc (Fedora: qemu-system-s390x)', bus: 'ccw', memory: 512 },
};

/** The first existing file of a list, or an error naming the package that has it. */
function firstFile(list, what, pkg) {
  const f = list.find((p) => existsSync(p));
  if (!f) throw new Error(`no ${what} found (looked for ${list.join(', ')}): install ${pkg}`);
  return f;
}

/** The firmware this arch boots through: { code, vars } for UEFI, { rom } otherwise. */
export function firmware(arch) {
  const fw = FIRMWARE[arch];
  if (!fw) throw new Error(`no firmware known for arch ${arch}`);
  if (fw.code) return { kind: 'uefi', code: firstFile(fw.code, `${arch} UEFI firmware`, fw.pkg), vars: firstFile(fw.vars, `${arch} UEFI variable store`, fw.pkg) };
  return { kind: arch === 'ppc64le' ? 'slof' : 's390-ccw', rom: firstFile(fw.rom, `${arch} firmware`, fw.pkg) };
}

/**
 * KVM or TCG, and why. KVM needs the guest's arch to be this machine's, /dev/kvm usable, QEMU built
 * with KVM for that target and, on x86, the hardware-virtualization module (kvm_intel or kvm_amd):
 * a /dev/kvm without it (such as kvm_pvm on a nested cloud VM) runs no unmodified guest or firmware.
 */
export async function chooseAccel(arch, bin) {
  if (arch !== hostArch()) return { accel: 'tcg', why: `TCG: the guest is ${arch}, this machine is ${hostArch()}` };
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
  } catch {
    return { accel: 'tcg', why: 'TCG: /dev/kvm is missing or not writable' };
  }
  if (arch === 'x86_64' && !existsSync('/sys/module/kvm_intel') && !existsSync('/sys/module/kvm_amd')) {
    const mods = existsSync('/sys/module/kvm_pvm') ? ' (only kvm_pvm, which runs no firmware)' : '';
    return { accel: 'tcg', why: `TCG: /dev/kvm exists but neither kvm_intel nor kvm_amd is loaded${mods}` };
  }
  const { stdout } = await run(bin, ['-accel', 'help']);
  if (!/^kvm$/m.test(stdout)) return { accel: 'tcg', why: `TCG: ${bin} has no KVM support` };
  return { accel: 'kvm', why: 'KVM: /dev/kvm is usable' };
}

function blockDevice(bus, drive, extra = '') {
  return ['-device', `${bus === 'ccw' ? 'virtio-blk-ccw' : 'virtio-blk-pci'},drive=${drive}${extra}`];
}

/**
 * QEMU's arguments. `disk` is attached with snapshot=on (writes go to a temporary file, the image
 * is never modified), `seed` read-only, the console on stdout; SSH is forwarded from
 * 127.0.0.1:`sshPort` only. `direct` ({ kernel, initrd, append }) boots that kernel without the
 * firmware's bootloader; `varsFile` is a writable copy of the UEFI variable store.
 */
export function qemuArgs({ arch, accel, disk, format, seed, sshPort, memory, fw, varsFile, direct }) {
  const q = QEMU[arch];
  if (!q) throw new Error(`cannot boot arch ${arch}: use x86_64, aarch64, ppc64le or s390x`);
  const args = ['-nodefaults', '-no-user-config', '-display', 'none', '-serial', 'stdio', '-monitor', 'none', '-no-reboot'];
  args.push('-m', String(memory ?? q.memory), '-smp', '1', '-accel', accel);
  switch (arch) {
    case 'x86_64':
      args.push('-M', 'q35', '-cpu', accel === 'kvm' ? 'host' : 'max');
      break;
    case 'aarch64':
      // pauth-impdef: TCG's emulation of the architected pointer-authentication cipher (QARMA)
      // more than doubles the boot time; the implementation-defined one is as good for a boot.
      args.push('-M', 'virt', '-cpu', accel === 'kvm' ? 'host' : 'max,pauth-impdef=on');
      break;
    case 'ppc64le':
      // TCG emulates none of the Spectre mitigations the default pseries machine asks for.
      args.push('-M', accel === 'kvm' ? 'pseries' : 'pseries,cap-cfpc=broken,cap-sbbc=broken,cap-ibs=broken,cap-ccf-assist=off');
      break;
    case 's390x':
      args.push('-M', 's390-ccw-virtio', ...(accel === 'kvm' ? ['-cpu', 'host'] : []));
      break;
  }
  if (fw.kind === 'uefi') {
    args.push('-drive', `if=pflash,format=raw,unit=0,readonly=on,file=${fw.code}`, '-drive', `if=pflash,format=raw,unit=1,file=${varsFile}`);
  } else {
    args.push('-bios', fw.rom);
  }
  if (direct) {
    args.push('-kernel', direct.kernel, '-append', direct.append);
    if (direct.initrd) args.push('-initrd', direct.initrd);
  }
  args.push('-drive', `file=${disk},format=${format},if=none,id=disk0,snapshot=on`, ...blockDevice(q.bus, 'disk0', ',bootindex=0'));
  if (seed) args.push('-drive', `file=${seed},format=raw,if=none,id=seed0,readonly=on`, ...blockDevice(q.bus, 'seed0'));
  args.push('-netdev', `user,id=net0,hostfwd=tcp:127.0.0.1:${sshPort}-:22`);
  // romfile= : no iPXE option ROM (the firmware boots from the disk; Debian ships it apart).
  args.push('-device', q.bus === 'ccw' ? 'virtio-net-ccw,netdev=net0' : 'virtio-net-pci,netdev=net0,romfile=');
  return { bin: q.bin, args };
}
