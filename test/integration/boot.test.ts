// The lab's images boot: `farm build` on the lab makes each arch's disk with the stand-in bib
// (a real kernel from Debian for that arch, GRUB from Debian's packages where the arch has it),
// and the lab's boot script boots it with QEMU under the arch's firmware, with a NoCloud seed,
// to a login prompt and an SSH command checked with the seed's keys.

import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { chmod, mkdir, readFile, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { farm } from '../support/cli.ts';
import { ensureLab, labExec, labInventoryFor, labInventoryVariant, markedLabInventory } from '../support/lab.ts';
import { BOOT_SCRIPT, bootImage, type BootResult } from '../support/boot.ts';
import { readFromDisk, sha256sum } from '../support/disk.ts';
import type { Manifest } from '../../src/records/manifest.ts';

const ARCHES = ['x86_64', 'aarch64', 'ppc64le', 's390x'] as const;
type Arch = (typeof ARCHES)[number];

const HOSTS: Record<Arch, string> = { x86_64: 'lab-x86_64', aarch64: 'lab-aarch64', ppc64le: 'lab-ppc64le', s390x: 'lab-s390x' };
// The image config's Architecture (OCI names) of each host's base image.
const OCI: Record<Arch, string> = { x86_64: 'amd64', aarch64: 'arm64', ppc64le: 'ppc64le', s390x: 's390x' };
// Debian's kernel release names its flavour, hence the arch the kernel was built for.
const BANNER: Record<Arch, RegExp> = {
  x86_64: /Linux version 6\.\d+\.\d+-\d+-(cloud-)?amd64 /,
  aarch64: /Linux version 6\.\d+\.\d+-\d+-(cloud-)?arm64 /,
  ppc64le: /Linux version 6\.\d+\.\d+-\d+-powerpc64le /,
  s390x: /Linux version 6\.\d+\.\d+-\d+-s390x /,
};
// What the firmware printed before the disk's own GRUB ran.
const FIRMWARE: Partial<Record<Arch, RegExp>> = {
  x86_64: /BdsDxe: starting Boot\d+/,
  aarch64: /BdsDxe: starting Boot\d+/,
  ppc64le: /SLOF/,
};

// Per arch: the disk built, and what booting it gave.
const disks = new Map<Arch, { path: string; format: 'raw' | 'qcow2'; sha256: string; bibManifest: string }>();
let token = '';
let buildDir = '';

beforeAll(async () => {
  await ensureLab();
  const variant = await markedLabInventory();
  token = variant.token;
  const r = await farm(['build', '--arch', 'all', '--inventory', variant.file, '--json', '--no-upload']);
  expect(r.code, r.stderr).toBe(0);
  const manifest = JSON.parse(r.stdout) as Manifest;
  buildDir = join(variant.dir, 'builds', manifest.last_run_uuid);
  for (const b of manifest.builds) {
    const arch = b.arch as Arch;
    if (disks.has(arch)) continue; // x86_64's ami and raw are the same disk
    const file = b.files[0]!;
    const bibManifest = b.files.find((f) => /manifest-.*\.json$/.test(f.name))!;
    disks.set(arch, {
      path: join(buildDir, file.name),
      format: b.type === 'qcow2' ? 'qcow2' : 'raw',
      sha256: file.sha256,
      bibManifest: join(buildDir, bibManifest.name),
    });
  }
});

describe('the lab base images', () => {
  it.each(ARCHES)("%s's base image records its arch in its config and in a marker file", async (arch) => {
    const out = await labExec(HOSTS[arch], ['podman', 'image', 'inspect', '--format', '{{.Architecture}} {{.Os}}', 'localhost/farm-lab/base:latest']);
    expect(out.trim()).toBe(`${OCI[arch]} linux`);
    const disk = disks.get(arch)!;
    expect((await readFromDisk(disk.path, disk.format, '/usr/share/farm/arch')).trim()).toBe(arch);
    // The build's own file (COPY, no RUN) is there too.
    expect((await readFromDisk(disk.path, disk.format, '/usr/share/farm/marker')).trim()).toBe(token);
  });

  it("the stand-in's manifest says how each disk boots", async () => {
    const boots: Record<string, unknown> = {};
    for (const arch of ARCHES) boots[arch] = (JSON.parse(await readFile(disks.get(arch)!.bibManifest, 'utf8')) as { boot: unknown }).boot;
    expect(boots).toMatchObject({
      x86_64: { bootloader: 'grub x86_64-efi', boot: 'firmware', efi_file: 'EFI/BOOT/BOOTX64.EFI' },
      aarch64: { bootloader: 'grub arm64-efi', boot: 'firmware', efi_file: 'EFI/BOOT/BOOTAA64.EFI' },
      ppc64le: { bootloader: 'grub powerpc-ieee1275', boot: 'firmware' },
      s390x: { bootloader: 'none', boot: 'direct-kernel' },
    });
  });
});

describe('booting the built disks', () => {
  const results = new Map<Arch, BootResult>();

  it.each(ARCHES)('%s boots to a login prompt and answers uname -m over SSH with the seed\'s keys', async (arch) => {
    const disk = disks.get(arch)!;
    const consoleFile = join(buildDir, arch, 'boot-console.log');
    const { code, result } = await bootImage(['--arch', arch, '--disk', disk.path, '--format', disk.format, '--wait', 'ssh', '--timeout', '240', '--console', consoleFile]);
    results.set(arch, result);
    expect(result.passed, `${result.reason}\n${(result.last_lines ?? []).join('\n')}`).toBe(true);
    expect(code).toBe(0);
    expect(result.ssh_output).toBe(arch);
    const text = await readFile(consoleFile, 'latin1');
    expect(text).toMatch(BANNER[arch]);
    expect(text).toContain(`farm-lab: booted the ${arch} lab image; uname -m: ${arch}`);
    expect(text).toMatch(/login: *$/m);
    if (arch === 's390x') {
      // No bootloader on the disk: QEMU loads the kernel its boot entry names.
      expect(result.boot).toBe('direct-kernel');
      expect(result.qemu).toMatch(/ -kernel \S+ -append root=UUID=\S+ rootfstype=ext4 rw console=ttysclp0/);
    } else {
      // Through the firmware and the disk's own GRUB: no -kernel on QEMU's command line.
      expect(result.boot).toBe('firmware');
      expect(result.qemu).not.toContain('-kernel');
      expect(text).toMatch(FIRMWARE[arch]!);
      expect(text).toContain('Welcome to GRUB!');
    }
    // The disk was a throwaway snapshot: it is byte for byte what the worker built.
    expect(await sha256sum(disk.path)).toBe(disk.sha256);
  });

  it('boots each arch within the test budget', () => {
    const seconds = Object.fromEntries([...results].map(([a, r]) => [a, { accel: r.accel, login: r.login_seconds, ssh: r.ssh_seconds }]));
    console.log('lab boot times (s):', JSON.stringify(seconds));
    for (const r of results.values()) expect(r.ssh_seconds!).toBeLessThan(180);
  });
});

describe('the boot script', () => {
  it('reports a timeout with the last console lines', async () => {
    const disk = disks.get('s390x')!;
    const { code, result } = await bootImage(['--arch', 's390x', '--disk', disk.path, '--format', disk.format, '--wait', 'login', '--timeout', '4', '--console', join(buildDir, 'timeout.console')]);
    expect(code).toBe(1);
    expect(result.passed).toBe(false);
    expect(result.reason).toBe('timeout after 4s waiting for a login prompt');
    expect(result.last_lines!.length).toBeGreaterThan(0);
  });

  it('fails at once, naming it, when the init panics the kernel', async () => {
    // An image whose /sbin/init exits: the kernel panics ("Attempted to kill init!").
    const inv = await labInventoryVariant();
    const context = join(inv.dir, 'panic');
    await mkdir(context, { recursive: true });
    await writeFile(join(context, 'init'), '#!/bin/sh\necho "farm test: this init exits"\nexit 1\n');
    await chmod(join(context, 'init'), 0o755);
    await writeFile(join(context, 'Containerfile'), 'FROM localhost/farm-lab/base:latest\nCOPY init /usr/sbin/init\n');
    const variant = await labInventoryFor({ containerfile: join(context, 'Containerfile'), context });
    const r = await farm(['build', '--arch', 's390x', '--inventory', variant.file, '--json', '--no-upload']);
    expect(r.code, r.stderr).toBe(0);
    const manifest = JSON.parse(r.stdout) as Manifest;
    const file = manifest.builds[0]!.files[0]!;
    const { code, result } = await bootImage(['--arch', 's390x', '--disk', join(variant.dir, 'builds', manifest.last_run_uuid, file.name), '--timeout', '240', '--console', join(buildDir, 'panic.console')]);
    expect(code).toBe(1);
    expect(result.reason).toMatch(/^kernel panic: Kernel panic - not syncing: Attempted to kill init!/);
    expect(result.last_lines!.join('\n')).toContain('farm test: this init exits');
    expect(result.login_seconds).toBeUndefined();
  });

  it('fails at once when the firmware finds nothing to boot', async () => {
    const empty = join(buildDir, 'empty.raw');
    await writeFile(empty, '');
    await truncate(empty, 64 * 2 ** 20);
    const { code, result } = await bootImage(['--arch', 'x86_64', '--disk', empty, '--timeout', '120', '--console', join(buildDir, 'empty.console')]);
    expect(code).toBe(1);
    expect(result.reason).toMatch(/^no bootloader the firmware could start: BdsDxe: starting Boot\w+ "EFI Internal Shell"/);
  });

  it('Ctrl-C stops QEMU and removes its files', async () => {
    const disk = disks.get('x86_64')!;
    const child = spawn(process.execPath, [BOOT_SCRIPT, '--arch', 'x86_64', '--disk', disk.path, '--timeout', '240', '--console', join(buildDir, 'ctrl-c.console')], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    const closed = new Promise<number | null>((r) => child.on('close', (c) => r(c)));
    const qemuLine = await new Promise<string>((resolveLine) => {
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
        const m = /^boot-image: (qemu-system-\S+ .*)$/m.exec(stderr);
        if (m) resolveLine(m[1]!);
      });
    });
    const dir = /file=(\/\S+?)\/seed\.img/.exec(qemuLine)![1]!;
    // QEMU runs (its command line names our temporary directory), then Ctrl-C.
    const running = () => readdirSync('/proc').filter((p) => /^\d+$/.test(p) && (() => {
      try {
        return readFileSync(`/proc/${p}/cmdline`, 'latin1').includes(dir);
      } catch {
        return false;
      }
    })());
    await new Promise((w) => setTimeout(w, 2000));
    expect(running().length).toBeGreaterThan(0);
    child.kill('SIGINT');
    expect(await closed).toBe(130);
    expect(running()).toEqual([]);
    expect(existsSync(dir)).toBe(false);
    expect(await sha256sum(disk.path)).toBe(disk.sha256);
  });
});
