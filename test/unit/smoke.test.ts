// The smoke check's pure parts: QEMU's argv per arch, the console matcher, the settings merge
// and the inventory's smoke: validation.

import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { smokeProblems } from '../../workers/smoke/smoke.ts';
import type { WorkerTransport } from '../../workers/transport.ts';
import { ConsoleWatcher } from '../../workers/smoke/console.ts';
import { chooseAccel, distinctDisks, qemuArgv, type Firmware } from '../../workers/smoke/plan.ts';
import { DEFAULT_CONSOLE, checksFor, smokeFor } from '../../workers/smoke/settings.ts';
import { smokeSchema } from '../../src/inventory/smoke-schema.ts';
import { buildManifest } from '../../src/records/manifest.ts';
import { parseBuildState } from '../../src/records/state-schema.ts';
import type { BuildState, SmokeRecord } from '../../src/records/state.ts';
import { renderSummary } from '../../src/ui/summary.ts';

const uefi: Firmware = { kind: 'uefi', code: '/usr/share/OVMF/OVMF_CODE_4M.fd', vars: '/usr/share/OVMF/OVMF_VARS_4M.fd' };
const base = { disk: '/out/run1/image/disk.raw', format: 'raw', seed: '/tmp/d/seed.img', sshPort: 40000, pidFile: '/tmp/d/qemu.pid' };

describe('qemu argv', () => {
  it('x86_64: q35, OVMF from pflash with a copy of the variables, the disk as a snapshot, SSH on loopback only', () => {
    const a = qemuArgv({ ...base, arch: 'x86_64', accel: 'tcg', fw: uefi, varsFile: '/tmp/d/vars.fd' }).join(' ');
    expect(a).toMatch(/^qemu-system-x86_64 /);
    expect(a).toContain('-M q35 -cpu max');
    expect(a).toContain('if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd');
    expect(a).toContain('if=pflash,format=raw,unit=1,file=/tmp/d/vars.fd');
    expect(a).toContain('file=/out/run1/image/disk.raw,format=raw,if=none,id=disk0,snapshot=on');
    expect(a).toContain('hostfwd=tcp:127.0.0.1:40000-:22');
    expect(a).toContain('-pidfile /tmp/d/qemu.pid');
    expect(a).not.toContain('-kernel');
  });

  it('KVM uses the host CPU; aarch64 TCG uses the fast pointer authentication', () => {
    expect(qemuArgv({ ...base, arch: 'x86_64', accel: 'kvm', fw: uefi, varsFile: '/v' }).join(' ')).toContain('-accel kvm -M q35 -cpu host');
    expect(qemuArgv({ ...base, arch: 'aarch64', accel: 'tcg', fw: uefi, varsFile: '/v' }).join(' ')).toContain('-M virt -cpu max,pauth-impdef=on');
  });

  it('ppc64le boots SLOF with 1 GiB; s390x the s390-ccw BIOS on ccw devices, or the disk kernel directly', () => {
    const ppc = qemuArgv({ ...base, arch: 'ppc64le', accel: 'tcg', fw: { kind: 'slof', rom: '/usr/share/qemu/slof.bin' } }).join(' ');
    expect(ppc).toContain('-bios /usr/share/qemu/slof.bin');
    expect(ppc).toContain('-m 1024');
    expect(ppc).toContain('virtio-blk-pci,drive=disk0,bootindex=0');
    const s = qemuArgv({
      ...base,
      arch: 's390x',
      accel: 'tcg',
      format: 'qcow2',
      fw: { kind: 's390-ccw', rom: '/usr/share/qemu/s390-ccw.img' },
      direct: { kernel: '/tmp/d/kernel', initrd: '/tmp/d/initrd', append: 'root=UUID=x console=ttysclp0' },
    });
    expect(s.join(' ')).toContain('virtio-blk-ccw,drive=disk0');
    expect(s.join(' ')).toContain('virtio-net-ccw,netdev=net0');
    const k = s.indexOf('-append');
    expect(s[k + 1]).toBe('root=UUID=x console=ttysclp0');
    expect(s.join(' ')).toContain('-kernel /tmp/d/kernel');
    expect(s.join(' ')).toContain('-initrd /tmp/d/initrd');
  });

  it('refuses a path QEMU would split at a comma', () => {
    expect(() => qemuArgv({ ...base, disk: '/out/a,b.raw', arch: 'x86_64', accel: 'tcg', fw: uefi, varsFile: '/v' })).toThrow(/contains ','/);
  });

  it('chooses KVM only when it can run the guest, and says why', () => {
    expect(chooseAccel('x86_64', { devKvm: true, hwModule: true, qemuHasKvm: true }).accel).toBe('kvm');
    expect(chooseAccel('x86_64', { devKvm: true, hwModule: false, qemuHasKvm: true })).toEqual({ accel: 'tcg', why: expect.stringMatching(/kvm_intel nor kvm_amd/) });
    expect(chooseAccel('aarch64', { devKvm: false, hwModule: false, qemuHasKvm: true }).why).toMatch(/\/dev\/kvm is missing/);
    expect(chooseAccel('s390x', { devKvm: true, hwModule: false, qemuHasKvm: false }).why).toMatch(/no KVM/);
  });

  it('boots a disk that ami and raw share once; skips archives', () => {
    const disks = [
      { type: 'ami', path: '/o/run1/image/disk.raw' },
      { type: 'vhd', path: '/o/run1/vpc/disk.vhd' },
      { type: 'raw', path: '/o/run2/image/disk.raw' },
      { type: 'gce', path: '/o/run1/gce/image.tar.gz' },
    ];
    expect(distinctDisks(disks).map((d) => [d.boot.path, d.types])).toEqual([
      ['/o/run1/image/disk.raw', ['ami', 'raw']],
      ['/o/run1/vpc/disk.vhd', ['vhd']],
    ]);
  });
});

describe('console watcher', () => {
  it('is ready at a login prompt or the multi-user target, even split over chunks', () => {
    const w = new ConsoleWatcher(DEFAULT_CONSOLE);
    expect(w.feed('Linux version 6.1.0-50-s390x (debian)\nfarm-boot lo')).toBeUndefined();
    expect(w.feed('gin: ')).toEqual({ kind: 'ready', line: 'login:' });
    expect(w.banner()).toBe('Linux version 6.1.0-50-s390x');
    expect(new ConsoleWatcher(DEFAULT_CONSOLE).feed('[  OK  ] Reached target multi-user.target - Multi-User System.\n')?.kind).toBe('ready');
  });

  it('fails at once on a panic, naming it, with the lines that led there', () => {
    const w = new ConsoleWatcher(DEFAULT_CONSOLE);
    w.feed('booting\nfarm test: this init exits\n');
    expect(w.feed('[    1.0] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100\nCPU: 0 PID: 1\nCall Trace:\n')).toEqual({
      kind: 'fatal',
      reason: 'kernel panic: Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100',
    });
    expect(w.lastLines().at(-2)).toBe('farm test: this init exits');
    expect(w.lastLines().join('\n')).not.toContain('Call Trace');
  });

  it('knows an emergency shell, UEFI finding nothing, GRUB rescue', () => {
    expect(new ConsoleWatcher(DEFAULT_CONSOLE).feed('You are in emergency mode. After logging in... emergency shell\n')?.kind).toBe('fatal');
    expect(new ConsoleWatcher(DEFAULT_CONSOLE).feed('BdsDxe: starting Boot0003 "EFI Internal Shell" from ...\n')).toMatchObject({ reason: /^no bootloader/ });
    expect(new ConsoleWatcher(DEFAULT_CONSOLE).feed('grub rescue> ')).toMatchObject({ reason: /^GRUB rescue/ });
  });

  it('takes the inventory pattern', () => {
    const w = new ConsoleWatcher('farm-lab: booted');
    expect(w.feed('login: ')).toBeUndefined();
    expect(w.feed('farm-lab: booted the x86_64 lab image\n')?.kind).toBe('ready');
  });
});

describe('smoke settings', () => {
  it('is off without smoke:, or with false globally or for the arch', () => {
    expect(smokeFor({}, 'x86_64')).toBeUndefined();
    expect(smokeFor({ smoke: false, arches: { x86_64: { smoke: { timeout_s: 9 } } } }, 's390x')).toBeUndefined();
    // A global false wins over an arch's overrides (a test variant turns the lab's smoke off).
    expect(smokeFor({ smoke: false, arches: { x86_64: { smoke: { timeout_s: 9 } } } }, 'x86_64')).toBeUndefined();
    expect(smokeFor({ arches: { x86_64: { smoke: { timeout_s: 9 } } } }, 'x86_64')?.timeout_s).toBe(9);
    expect(smokeFor({ smoke: {}, arches: { s390x: { smoke: false } } }, 's390x')).toBeUndefined();
  });

  it("merges the arch's fields over the global ones over the defaults", () => {
    const s = smokeFor({ smoke: { timeout_s: 60, checks: [{ run: 'uname -m', output: '{arch}' }] }, arches: { s390x: { smoke: { boot: 'direct' } } } }, 's390x')!;
    expect(s).toMatchObject({ timeout_s: 60, boot: 'direct', policy: 'block', ssh: true, default_checks: true });
    expect(checksFor(s, 's390x')).toEqual([
      { run: 'systemctl is-system-running --wait || true', exit: 0, output: ['running'] },
      { run: 'bootc status', exit: 0 },
      { run: 'uname -m', exit: 0, output: ['s390x'] },
    ]);
    expect(checksFor({ ...s, allow_degraded: true }, 's390x')[0]!.output).toEqual(['running', 'degraded']);
    expect(checksFor({ ...s, ssh: false }, 's390x')).toEqual([]);
  });

  it('the schema refuses a bad pattern, an unknown key, a bad policy', () => {
    expect(smokeSchema.safeParse(false).success).toBe(true);
    expect(smokeSchema.safeParse({ console: '([' }).success).toBe(false);
    expect(smokeSchema.safeParse({ checks: [{ run: 'x', exti: 1 }] }).success).toBe(false);
    expect(smokeSchema.safeParse({ policy: 'maybe' }).success).toBe(false);
    expect(smokeSchema.safeParse(true).success).toBe(false);
  });
});

describe('the verdict beside each name', () => {
  const disk = (name: string) => ({ path: `/b/x86_64/${name}`, name, size: 1024, sha256: 'ab'.repeat(32), format: 'raw' as const });
  const state = (smoke: SmokeRecord[]): BuildState => ({
    version: 1,
    buildId: '20261206t210000z',
    inventory: '/i.yaml',
    startedAt: '2026-12-06T21:00:00.000Z',
    status: 'succeeded',
    arches: {
      x86_64: {
        arch: 'x86_64',
        step: 'fetched',
        types: ['ami', 'raw', 'vhd'],
        imageName: 'farm-x',
        artifacts: [
          { type: 'ami', imageName: 'farm-x', disk: disk('ami/disk.raw'), extra: [] },
          { type: 'raw', imageName: 'farm-x', disk: disk('raw/disk.raw'), extra: [] },
          { type: 'vhd', imageName: 'farm-x', disk: disk('vhd/disk.vhd'), extra: [] },
        ],
        uploads: {},
        at: {},
        smoke,
      },
    },
  });

  it('the end table has a SMOKE column; the manifest carries the verdict in custom_data', () => {
    const s = state([
      { types: ['ami', 'raw'], status: 'passed', policy: 'warn', log: 'x86_64/smoke.log' },
      { types: ['vhd'], status: 'failed', reason: 'kernel panic: x', policy: 'warn', log: 'x86_64/smoke.log' },
    ]);
    const table = renderSummary(s, '/');
    expect(table).toMatch(/SHA256\s+SMOKE\s+PATH/);
    expect(table).toMatch(/ raw .* passed /);
    expect(table).toMatch(/ vhd .* FAILED \(warn\) /);
    const m = buildManifest(s);
    expect(m.builds.map((b) => [b.type, b.custom_data.smoke])).toEqual([['ami', 'passed'], ['raw', 'passed'], ['vhd', 'failed']]);
    expect(m.builds[2]!.custom_data).toMatchObject({ smoke_reason: 'kernel panic: x', smoke_log: 'x86_64/smoke.log' });
    expect(renderSummary(state([{ types: ['ami', 'raw', 'vhd'], status: 'skipped', reason: 'smoke check off for this arch' }]), '/')).toMatch(/ ami .* off /);
  });

  it('state.json accepts the verdicts (an optional field: version 1 files without it still read)', () => {
    const s = state([{ types: ['ami'], status: 'passed', accel: 'tcg', boot: 'firmware', seconds: 12.5 }]);
    expect(parseBuildState(s, 'x').arches.x86_64!.smoke![0]!.status).toBe('passed');
    delete s.arches.x86_64!.smoke;
    expect(parseBuildState(s, 'x').arches.x86_64!.smoke).toBeUndefined();
    expect(() => parseBuildState(state([{ types: ['ami'], status: 'maybe' as 'passed' }]), 'x')).toThrow(/smoke/);
  });
});

describe('a worker without QEMU', () => {
  it('is a probe problem naming the package to install', async () => {
    // A worker whose PATH has a shell and coreutils but no QEMU, dosfstools or mtools: the probe's
    // script really runs (locally, through a transport that execs argv without a shell).
    const bin = mkdtempSync(join(tmpdir(), 'farm-smoke-path-'));
    for (const tool of ['sh', 'cat', 'grep']) symlinkSync(execFileSync('sh', ['-c', `command -v ${tool}`]).toString().trim(), join(bin, tool));
    const t = {
      worker: { name: 'w1', output_dir: '/tmp' },
      exec: (argv: readonly string[]) => {
        const r = spawnSync(argv[0]!, argv.slice(1), { env: { PATH: bin }, encoding: 'utf8' });
        return Promise.resolve({ code: r.status ?? 1, stdout: r.stdout, stderr: r.stderr });
      },
    } as unknown as WorkerTransport;
    const problems = await smokeProblems(t, 's390x', new AbortController().signal);
    expect(problems[0]).toBe('qemu-system-s390x is not installed, and smoke checks boot each image with it: install qemu-system-misc (Fedora: qemu-system-s390x-core) on the worker, or set smoke: false');
    expect(problems).toContain('mkfs.vfat is not installed (smoke checks need it): install dosfstools on the worker');
    expect(problems).toContain('mcopy is not installed (smoke checks need it): install mtools on the worker');
  });
});
