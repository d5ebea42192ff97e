// The smoke check with the real CLI on the lab: every disk boots with QEMU on the worker that
// built it, before the fetch; x86_64, aarch64 and ppc64le through their firmware and their own
// GRUB, s390x by direct kernel boot (the lab's disks carry no zipl). A broken image fails and
// travels nowhere under policy block, and is published, marked, under warn; other arches go on.

import { readdirSync, readFileSync } from 'node:fs';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { farm } from '../support/cli.ts';
import { ensureLab, labEnv, labExec, labInventoryVariant, markedSource } from '../support/lab.ts';
import type { Manifest } from '../../src/records/manifest.ts';
import type { BuildState } from '../../src/records/state.ts';

const ARCHES = ['x86_64', 'aarch64', 'ppc64le', 's390x'] as const;
type Arch = (typeof ARCHES)[number];
const HOSTS: Record<Arch, string> = { x86_64: 'lab-x86_64', aarch64: 'lab-aarch64', ppc64le: 'lab-ppc64le', s390x: 'lab-s390x' };
// Debian's kernel release names its flavour, hence the arch the kernel was built for.
const BANNER: Record<Arch, RegExp> = {
  x86_64: /Linux version 6\.\d+\.\d+-\d+-(cloud-)?amd64 /,
  aarch64: /Linux version 6\.\d+\.\d+-\d+-(cloud-)?arm64 /,
  ppc64le: /Linux version 6\.\d+\.\d+-\d+-powerpc64le /,
  s390x: /Linux version 6\.\d+\.\d+-\d+-s390x /,
};

const readState = (dir: string, id: string) => JSON.parse(readFileSync(join(dir, 'builds', id, 'state.json'), 'utf8')) as BuildState;
const buildIdOf = (dir: string) => readdirSync(join(dir, 'builds')).filter((n) => /^\d{8}t\d{6}z/.test(n)).sort().at(-1)!;

/** QEMU processes whose command line names a farm smoke directory (lab hosts share this PID space). */
function smokeQemus(): string[] {
  return readdirSync('/proc').filter((p) => {
    if (!/^\d+$/.test(p)) return false;
    try {
      const cmd = readFileSync(`/proc/${p}/cmdline`, 'latin1');
      return cmd.startsWith('qemu-system') && cmd.includes('farm-smoke.');
    } catch {
      return false;
    }
  });
}

const smokeDirs = async (host: string) => (await labExec(host, ['find', '/var/lib/farm/output', '-maxdepth', '1', '-name', 'farm-smoke.*'])).trim();

/** A source whose init exits on one arch (the kernel panics there) and is busybox's init elsewhere. */
async function brokenOn(dir: string, arch: Arch): Promise<{ containerfile: string; context: string }> {
  const context = join(dir, `broken-${arch}`);
  await mkdir(context, { recursive: true });
  await writeFile(
    join(context, 'init'),
    `#!/bin/sh\nif [ "$(cat /usr/share/farm/arch)" = ${arch} ]; then echo "farm test: this init exits on ${arch}"; exit 1; fi\nexec /usr/bin/busybox init\n`,
  );
  await chmod(join(context, 'init'), 0o755);
  await writeFile(join(context, 'Containerfile'), 'FROM localhost/farm-lab/base:latest\nCOPY init /usr/sbin/init\n');
  return { containerfile: join(context, 'Containerfile'), context };
}

beforeAll(async () => {
  await ensureLab();
});

describe('all four arches built with smoke on', () => {
  let dir = '';
  let state: BuildState;
  let manifest: Manifest;
  let stdout = '';
  beforeAll(async () => {
    const src = await markedSource((await labInventoryVariant()).dir);
    const v = await labInventoryVariant((doc) => {
      doc.source.containerfile = src.containerfile;
      doc.source.context = src.context;
    }, { smoke: true });
    dir = v.dir;
    const r = await farm(['build', '--arch', 'all', '--inventory', v.file, '--no-upload'], { timeoutMs: 900_000 });
    stdout = r.stdout;
    expect(r.code, r.stderr).toBe(0);
    const id = buildIdOf(dir);
    state = readState(dir, id);
    manifest = JSON.parse(readFileSync(join(dir, 'builds', id, 'manifest.json'), 'utf8')) as Manifest;
  }, 900_000);

  it('every image passed, and the table and the manifest say so', () => {
    expect(stdout).toMatch(/ARCH\s+TYPE\s+IMAGE NAME\s+SIZE\s+SHA256\s+SMOKE\s+PATH/);
    const rows = stdout.split('\n').filter((l) => /^(x86_64|aarch64|ppc64le|s390x) /.test(l));
    expect(rows).toHaveLength(7);
    for (const row of rows) expect(row).toMatch(/ passed /);
    expect(manifest.builds).toHaveLength(7);
    for (const b of manifest.builds) expect(b.custom_data).toMatchObject({ smoke: 'passed', smoke_log: `${b.arch}/smoke.log` });
  });

  it.each(ARCHES)('%s booted on its worker (TCG here), through its own bootloader except s390x, to the SSH check', (arch) => {
    const records = state.arches[arch]!.smoke!;
    for (const r of records) {
      expect(r).toMatchObject({ status: 'passed', accel: 'tcg', policy: 'block', boot: arch === 's390x' ? 'direct' : 'firmware' });
      expect(r.seconds).toBeLessThan(180);
    }
    const log = readFileSync(join(dir, 'builds', state.buildId, arch, 'smoke.log'), 'latin1');
    expect(log).toMatch(BANNER[arch]);
    expect(log).toContain(`farm-lab: booted the ${arch} lab image; uname -m: ${arch}`);
    if (arch !== 's390x') expect(log).toContain('Welcome to GRUB!');
    console.log(`smoke ${arch}:`, JSON.stringify(records.map((r) => ({ types: r.types, seconds: r.seconds, accel: r.accel, boot: r.boot }))));
  });

  it('ami and raw share a disk and boot once', () => {
    const x86 = state.arches.x86_64!.smoke!;
    expect(x86.map((r) => r.types)).toEqual([['ami', 'raw'], ['vhd']]);
  });

  it('leaves no QEMU and no smoke directory on the workers', async () => {
    expect(smokeQemus()).toEqual([]);
    for (const h of Object.values(HOSTS)) expect(await smokeDirs(h)).toBe('');
  });
});

describe('a broken image', () => {
  // s390x's init exits: its kernel panics. x86_64 builds the same source and boots.
  const variantFor = async (policy: 'block' | 'warn') => {
    const base = await labInventoryVariant();
    const src = await brokenOn(base.dir, 's390x');
    return labInventoryVariant((doc) => {
      doc.source.containerfile = src.containerfile;
      doc.source.context = src.context;
      doc.smoke.policy = policy;
      // Auto release requires a pass: a failed boot published under warn stays a candidate.
      if (policy === 'warn') doc.release = { auto: true };
      // One disk and one target for x86_64 keeps the boot and the upload short.
      doc.arches.x86_64.types = ['raw'];
      doc.arches.x86_64.targets = doc.arches.x86_64.targets.filter((t: { kind: string }) => t.kind === 'libvirt');
    }, { smoke: true });
  };

  it('under block: fails its check, is neither fetched nor uploaded, and the other arch goes on', async () => {
    const v = await variantFor('block');
    const r = await farm(['build', '--arch', 's390x,x86_64', '--inventory', v.file, '--json'], { env: await labEnv(), timeoutMs: 900_000 });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/smoke check failed \(policy block: not fetched, not uploaded\): qcow2: kernel panic: Kernel panic - not syncing: Attempted to kill init!/);
    expect(r.stderr).toContain('farm test: this init exits on s390x');
    const state = readState(v.dir, buildIdOf(v.dir));
    const s390 = state.arches.s390x!;
    expect(s390.step).toBe('failed');
    expect(s390.artifacts).toEqual([]);
    expect(s390.uploads).toEqual({});
    expect(s390.smoke![0]).toMatchObject({ status: 'failed', policy: 'block', boot: 'direct' });
    expect(s390.smoke![0]!.lastLines!.join('\n')).toContain('farm test: this init exits on s390x');
    // Nothing of s390x was fetched; its console log was.
    const archDir = join(v.dir, 'builds', state.buildId, 's390x');
    expect(readdirSync(archDir, { withFileTypes: true }).filter((e) => e.isDirectory())).toEqual([]);
    expect(readdirSync(archDir)).toContain('smoke.log');
    expect(await readFile(join(archDir, 'smoke.log'), 'latin1')).toMatch(BANNER.s390x);
    const x86 = state.arches.x86_64!;
    expect(x86.step).toBe('fetched');
    expect(x86.smoke![0]).toMatchObject({ status: 'passed', types: ['raw'] });
    expect(Object.values(x86.uploads).map((u) => u.step)).toEqual(['uploaded']);
    const manifest = JSON.parse(r.stdout) as Manifest;
    expect(manifest.builds.filter((b) => b.arch === 's390x')).toEqual([]);
    expect(await smokeDirs(HOSTS.s390x)).toBe('');
  }, 900_000);

  it('under warn: is published and marked failed', async () => {
    const v = await variantFor('warn');
    const r = await farm(['build', '--arch', 's390x', '--inventory', v.file], { env: await labEnv(), timeoutMs: 900_000 });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/warning: smoke check failed \(policy warn: the images go on, marked\): qcow2: kernel panic/);
    expect(r.stdout).toMatch(/s390x\s+qcow2\s+\S+\s+[\d.]+ MiB\s+[0-9a-f]{12}\s+FAILED \(warn\)/);
    expect(r.stderr).toMatch(/release: auto: the smoke check failed for s390x \(qcow2\); the images of \S+ stay candidates/);
    expect(r.stderr).not.toMatch(/release: auto: released/);
    const state = readState(v.dir, buildIdOf(v.dir));
    const s390 = state.arches.s390x!;
    expect(s390.step).toBe('fetched');
    expect(Object.values(s390.uploads).map((u) => u.step)).toEqual(['uploaded']);
    const manifest = JSON.parse(readFileSync(join(v.dir, 'builds', state.buildId, 'manifest.json'), 'utf8')) as Manifest;
    expect(manifest.builds.length).toBeGreaterThan(1);
    for (const b of manifest.builds) expect(b.custom_data.smoke).toBe('failed');
    expect(manifest.builds[0]!.custom_data.smoke_reason).toMatch(/^kernel panic/);
  }, 900_000);
});

describe('a boot that does not get there', () => {
  it('times out naming the last console lines', async () => {
    const v = await labInventoryVariant((doc) => {
      doc.smoke.timeout_s = 4;
    }, { smoke: true });
    const r = await farm(['build', '--arch', 's390x', '--inventory', v.file, '--no-upload']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/smoke check failed \(policy block: not fetched, not uploaded\): qcow2: timeout after 4s waiting for the console/);
    expect(r.stderr).toMatch(/last console lines:\n {4}\S/);
    const s390 = readState(v.dir, buildIdOf(v.dir)).arches.s390x!;
    expect(s390.smoke![0]!.lastLines!.length).toBeGreaterThan(0);
  }, 600_000);

  it('Ctrl-C during a boot leaves no QEMU running and no files on the worker', async () => {
    const v = await labInventoryVariant((doc) => {
      doc.smoke.console = 'a line no console prints';
    }, { smoke: true });
    let sent = false;
    let running: string[] = [];
    const r = await farm(['build', '--arch', 's390x', '--inventory', v.file, '--no-upload'], {
      onSpawn: (child) => {
        let err = '';
        child.stderr!.on('data', (d: Buffer) => {
          err += d.toString();
          if (!sent && /smoke qcow2: qemu-system-s390x /.test(err)) {
            sent = true;
            // QEMU is up (its command line was printed just before it started): let it boot a little.
            setTimeout(() => {
              running = smokeQemus();
              child.kill('SIGINT');
            }, 2000);
          }
        });
      },
    });
    expect(sent).toBe(true);
    expect(running.length).toBe(1);
    expect(r.code).toBe(130);
    expect(smokeQemus()).toEqual([]);
    expect(await smokeDirs(HOSTS.s390x)).toBe('');
  }, 600_000);
});
