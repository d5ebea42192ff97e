// The lab's boot pieces that need no lab: QEMU's command line per arch, the NoCloud seed's
// user-data read back by the guest's parser (busybox awk, as in the image), boot entries, the
// stand-in bib's GRUB menu, kargs and its refusal of a foreign-arch image.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO } from '../support/cli.ts';
// @ts-expect-error: plain .mjs of the lab's boot script, without type declarations
import * as qemuMod from '../../scripts/lab.d/boot/qemu.mjs';
// @ts-expect-error: plain .mjs of the lab's boot script, without type declarations
import * as seedMod from '../../scripts/lab.d/boot/seed.mjs';
// @ts-expect-error: plain .mjs of the lab's boot script, without type declarations
import * as directMod from '../../scripts/lab.d/boot/direct.mjs';
// @ts-expect-error: plain .mjs of the lab's stand-in bib, without type declarations
import * as bootMod from '../../scripts/lab.d/bib-standin/boot.mjs';
// @ts-expect-error: plain .mjs of the lab's stand-in bib, without type declarations
import * as archMod from '../../scripts/lab.d/bib-standin/arch.mjs';

type Args = { bin: string; args: string[] };
const qemu = qemuMod as {
  qemuArgs(o: Record<string, unknown>): Args;
  chooseAccel(arch: string, bin: string): Promise<{ accel: string; why: string }>;
  hostArch(): string;
};
const seed = seedMod as { userData(o: Record<string, string>): string };
const direct = directMod as { parseBlsEntry(t: string): { linux: string | null; initrd: string | null; options: string } };
const boot = bootMod as {
  findKernel(root: string): { version: string; kernel: string; initrd: string | null } | null;
  readKargs(root: string, arch: string): string[];
  kernelArgs(uuid: string, rootfs: string, kargs: string[]): string;
  grubMenu(o: Record<string, unknown>): string;
  grubStub(uuid: string): string;
};
const arch = archMod as { refuseForeignImage(config: unknown, buildArch: string): void; imageArch(config: unknown): string };

const tmp = mkdtempSync(join(tmpdir(), 'farm-lab-boot-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const UEFI = { kind: 'uefi', code: '/fw/CODE.fd', vars: '/fw/VARS.fd' };
const base = { accel: 'tcg', disk: '/d/disk.raw', format: 'raw', seed: '/d/seed.img', sshPort: 40022, varsFile: '/d/vars.fd' };
const opt = (a: string[], flag: string) => a.flatMap((v, i) => (a[i - 1] === flag ? [v] : []));

describe('QEMU command line', () => {
  it('boots x86_64 on q35 through OVMF from pflash, aarch64 on virt through AAVMF', () => {
    const x = qemu.qemuArgs({ ...base, arch: 'x86_64', fw: UEFI });
    expect(x.bin).toBe('qemu-system-x86_64');
    expect(opt(x.args, '-M')).toEqual(['q35']);
    expect(opt(x.args, '-drive')).toContain('if=pflash,format=raw,unit=0,readonly=on,file=/fw/CODE.fd');
    expect(opt(x.args, '-drive')).toContain('if=pflash,format=raw,unit=1,file=/d/vars.fd');
    expect(x.args).not.toContain('-kernel');
    const a = qemu.qemuArgs({ ...base, arch: 'aarch64', fw: UEFI });
    expect(a.bin).toBe('qemu-system-aarch64');
    expect(opt(a.args, '-M')).toEqual(['virt']);
    expect(opt(a.args, '-cpu')).toEqual(['max,pauth-impdef=on']);
    expect(qemu.qemuArgs({ ...base, arch: 'aarch64', accel: 'kvm', fw: UEFI }).args).toContain('host');
  });

  it('boots ppc64le on pseries with SLOF and s390x with the s390-ccw BIOS on ccw devices', () => {
    const p = qemu.qemuArgs({ ...base, arch: 'ppc64le', fw: { kind: 'slof', rom: '/fw/slof.bin' } });
    expect(p.bin).toBe('qemu-system-ppc64');
    expect(opt(p.args, '-M')[0]).toMatch(/^pseries/);
    expect(opt(p.args, '-bios')).toEqual(['/fw/slof.bin']);
    const s = qemu.qemuArgs({ ...base, arch: 's390x', fw: { kind: 's390-ccw', rom: '/fw/s390-ccw.img' }, direct: { kernel: '/k', initrd: '/i', append: 'root=UUID=x rw' } });
    expect(opt(s.args, '-M')).toEqual(['s390-ccw-virtio']);
    expect(opt(s.args, '-device').join(' ')).toMatch(/virtio-blk-ccw,drive=disk0.*virtio-blk-ccw,drive=seed0.*virtio-net-ccw/);
    expect(opt(s.args, '-kernel')).toEqual(['/k']);
    expect(opt(s.args, '-initrd')).toEqual(['/i']);
    expect(opt(s.args, '-append')).toEqual(['root=UUID=x rw']);
  });

  it('attaches the disk as a snapshot, the seed read-only, SSH on loopback only, the console on stdout', () => {
    for (const a of ['x86_64', 'aarch64', 'ppc64le', 's390x']) {
      const { args } = qemu.qemuArgs({ ...base, arch: a, fw: a === 'x86_64' || a === 'aarch64' ? UEFI : { kind: 'rom', rom: '/r' } });
      const drives = opt(args, '-drive');
      expect(drives).toContain('file=/d/disk.raw,format=raw,if=none,id=disk0,snapshot=on');
      expect(drives).toContain('file=/d/seed.img,format=raw,if=none,id=seed0,readonly=on');
      expect(opt(args, '-netdev')).toEqual(['user,id=net0,hostfwd=tcp:127.0.0.1:40022-:22']);
      expect(opt(args, '-serial')).toEqual(['stdio']);
      expect(args).toContain('-no-reboot');
    }
  });

  it('refuses an arch it cannot boot', () => {
    expect(() => qemu.qemuArgs({ ...base, arch: 'riscv64', fw: UEFI })).toThrow(/cannot boot arch riscv64/);
  });

  it('uses TCG for another arch, and for x86_64 without kvm_intel or kvm_amd', async () => {
    const foreign = qemu.hostArch() === 'aarch64' ? 's390x' : 'aarch64';
    expect(await qemu.chooseAccel(foreign, 'qemu-system-aarch64')).toEqual({ accel: 'tcg', why: `TCG: the guest is ${foreign}, this machine is ${qemu.hostArch()}` });
    if (qemu.hostArch() === 'x86_64' && !existsSync('/sys/module/kvm_intel') && !existsSync('/sys/module/kvm_amd')) {
      const r = await qemu.chooseAccel('x86_64', 'qemu-system-x86_64');
      expect(r.accel).toBe('tcg');
      expect(r.why).toMatch(/\/dev\/kvm|kvm_intel nor kvm_amd/);
    }
  });
});

describe("the seed's user-data, read by the image's parser", () => {
  it('gives root the authorized key and dropbear the host key, ignoring the rest', () => {
    const hostKey = ['-----BEGIN OPENSSH PRIVATE KEY-----', 'b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ', '-----END OPENSSH PRIVATE KEY-----', ''].join('\n');
    const made = seed.userData({ authorizedKey: 'ssh-ed25519 AAAAC3Nza check@farm', hostPrivateKey: hostKey, hostPublicKey: 'ssh-ed25519 AAAAhost' });
    // Plus what other seeds carry: a quoted key, and keys of another user (not root's).
    const ud = `${made.replace('ssh_authorized_keys:\n', 'ssh_authorized_keys:\n  - "ssh-ed25519 AAAAquoted q@farm"\n')}users:\n  - name: other\n    ssh_authorized_keys:\n      - ssh-ed25519 NOTROOT\n`;
    const dir = join(tmp, 'seed');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'user-data'), ud);
    execFileSync('/bin/busybox', [
      'awk', '-v', `keys=${join(dir, 'authorized_keys')}`, '-v', `hostdir=${dir}`,
      '-f', join(REPO, 'scripts/lab.d/guest/cloud-config.awk'), join(dir, 'user-data'),
    ]);
    expect(readFileSync(join(dir, 'authorized_keys'), 'utf8')).toBe('ssh-ed25519 AAAAquoted q@farm\nssh-ed25519 AAAAC3Nza check@farm\n');
    expect(readFileSync(join(dir, 'ed25519.openssh'), 'utf8')).toBe(hostKey);
    expect(existsSync(join(dir, 'rsa.openssh'))).toBe(false);
  });
});

describe('boot entries and GRUB menus', () => {
  it('reads a Boot Loader Specification entry', () => {
    expect(direct.parseBlsEntry('title x\nlinux /boot/vmlinuz-6\ninitrd /boot/initrd.img-6\noptions root=UUID=u rw console=ttysclp0\n')).toEqual({
      linux: '/boot/vmlinuz-6', initrd: '/boot/initrd.img-6', options: 'root=UUID=u rw console=ttysclp0',
    });
  });

  it("finds the image's kernel in /boot and its kargs for this arch in bootc's kargs.d", () => {
    const root = join(tmp, 'root');
    mkdirSync(join(root, 'boot'), { recursive: true });
    mkdirSync(join(root, 'usr/lib/bootc/kargs.d'), { recursive: true });
    writeFileSync(join(root, 'boot/vmlinux-6.1.0-57-powerpc64le'), '');
    writeFileSync(join(root, 'boot/initrd.img-6.1.0-57-powerpc64le'), '');
    writeFileSync(join(root, 'usr/lib/bootc/kargs.d/10-console.toml'), 'kargs = ["console=hvc0", "quiet"]\n');
    writeFileSync(join(root, 'usr/lib/bootc/kargs.d/20-s390.toml'), 'kargs = ["cio_ignore=all"]\nmatch-architectures = ["s390x"]\n');
    expect(boot.findKernel(root)).toEqual({ version: '6.1.0-57-powerpc64le', kernel: '/boot/vmlinux-6.1.0-57-powerpc64le', initrd: '/boot/initrd.img-6.1.0-57-powerpc64le' });
    expect(boot.readKargs(root, 'ppc64le')).toEqual(['console=hvc0', 'quiet']);
    expect(boot.readKargs(root, 's390x')).toEqual(['console=hvc0', 'quiet', 'cio_ignore=all']);
    expect(boot.findKernel(join(tmp, 'nothing'))).toBeNull();
  });

  it('writes a menu that finds the root filesystem by UUID, and a stub that loads it', () => {
    const args = boot.kernelArgs('1234-uuid', 'xfs', ['console=ttyS0,115200']);
    expect(args).toBe('root=UUID=1234-uuid rootfstype=xfs rw console=ttyS0,115200');
    const menu = boot.grubMenu({ kernel: { version: '6.1', kernel: '/boot/vmlinuz-6.1', initrd: '/boot/initrd.img-6.1' }, rootUuid: '1234-uuid', args });
    expect(menu).toContain('search --no-floppy --fs-uuid --set=root 1234-uuid');
    expect(menu).toContain(`linux /boot/vmlinuz-6.1 ${args}`);
    expect(menu).toContain('initrd /boot/initrd.img-6.1');
    expect(boot.grubStub('1234-uuid')).toBe('search --no-floppy --fs-uuid --set=dev 1234-uuid\nset prefix=($dev)/boot/grub2\nconfigfile $prefix/grub.cfg\n');
  });
});

describe("the stand-in's arch check", () => {
  it('accepts an image of the arch it builds for and refuses another, in bib\'s words', () => {
    expect(arch.imageArch({ architecture: 'arm64' })).toBe('aarch64');
    expect(() => arch.refuseForeignImage({ architecture: 'arm64' }, 'aarch64')).not.toThrow();
    expect(() => arch.refuseForeignImage({ architecture: 'amd64' }, 's390x')).toThrow(
      'cannot build manifest: image found is for unexpected architecture "x86_64" (expected "s390x"), if that is intentional, please make sure --target-arch matches',
    );
    expect(() => arch.refuseForeignImage({}, 'ppc64le')).toThrow(/unexpected architecture "unknown" \(expected "ppc64le"\)/);
  });
});
