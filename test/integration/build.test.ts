// `farm build` end to end against the lab's real hosts: sshd, podman and the stand-in bib in four
// network namespaces. Every assertion checks what really happened on disk or on the workers.

import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { farm } from '../support/cli.ts';
import { ensureLab, labExec, labInventoryVariant, markedSource, LAB_INVENTORY } from '../support/lab.ts';
import { allocatedBytes, qemuImgFormat, readFromDisk, sha256sum } from '../support/disk.ts';
import type { Manifest } from '../../src/records/manifest.ts';
import type { BuildState } from '../../src/records/state.ts';

const HOSTS = { x86_64: 'lab-x86_64', aarch64: 'lab-aarch64', ppc64le: 'lab-ppc64le', s390x: 'lab-s390x' } as const;

async function farmLeftovers(host: string): Promise<string> {
  const containers = await labExec(host, ['podman', 'ps', '-a', '--external', '--filter', 'label=io.farm.managed=true', '--format', '{{.ID}} {{.Names}}']);
  const images = await labExec(host, ['podman', 'images', '--filter', 'label=io.farm.managed=true', '--format', '{{.ID}} {{.Repository}}:{{.Tag}}']);
  const outputs = await labExec(host, ['find', '/var/lib/farm/output', '-mindepth', '1', '-maxdepth', '1']);
  return [containers, images, outputs].join('').trim();
}

beforeAll(async () => {
  await ensureLab();
});

describe('farm build on the lab', () => {
  it('validates the lab inventory', async () => {
    const r = await farm(['inventory', 'check', '--inventory', LAB_INVENTORY]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/valid/);
    expect(r.stdout).toMatch(/x86_64\s+lab-x86_64\s+ami, raw, vhd\s+ami\+vhd \| raw/);
  });

  it('finds every lab worker healthy', async () => {
    const r = await farm(['workers', 'check', '--inventory', LAB_INVENTORY]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    for (const host of Object.values(HOSTS)) expect(r.stdout).toMatch(new RegExp(`${host}\\s+\\S+\\s+\\S+\\s+healthy`));
  });

  it('builds all four arches natively, fetches and verifies them, and cleans the workers', async () => {
    let src!: Awaited<ReturnType<typeof markedSource>>;
    const inv = await labInventoryVariant();
    src = await markedSource(inv.dir);
    const variant = await labInventoryVariant((doc) => {
      doc.source.containerfile = src.containerfile;
      doc.source.context = src.context;
    });
    const r = await farm(['build', '--arch', 'all', '--inventory', variant.file, '--json', '--no-upload']);
    expect(r.code, r.stderr).toBe(0);

    const manifest = JSON.parse(r.stdout) as Manifest;
    const byName = new Map(manifest.builds.map((b) => [b.name, b]));
    expect([...byName.keys()].sort()).toEqual(['aarch64-ami', 'aarch64-vhd', 'ppc64le-raw', 's390x-qcow2', 'x86_64-ami', 'x86_64-raw', 'x86_64-vhd']);
    const buildDir = join(variant.dir, 'builds', manifest.last_run_uuid);
    const state = JSON.parse(await readFile(join(buildDir, 'state.json'), 'utf8')) as BuildState;
    expect(state.status).toBe('succeeded');

    for (const b of manifest.builds) {
      expect(b.worker).toBe(HOSTS[b.arch as keyof typeof HOSTS]);
      expect(b.image_name).toMatch(new RegExp(`^farm-lab-\\d{8}-\\d{6}-${b.arch}$`));
      expect(b.custom_data.build_id).toBe(manifest.last_run_uuid);
      const disk = b.files[0]!;
      const path = join(buildDir, disk.name);
      // The recorded checksum is the file's real one, and the worker's (fetchFile compared them).
      expect(await sha256sum(path)).toBe(disk.sha256);
      expect((await stat(path)).size).toBe(disk.size);
      // A fixed VHD (Azure's) is the raw disk plus a 512-byte footer: qemu-img and sfdisk read it as raw.
      const format = b.type === 'qcow2' ? 'qcow2' : 'raw';
      expect(await qemuImgFormat(path)).toBe(format);
      // The file the Containerfile wrote is inside every disk image.
      expect((await readFromDisk(path, format, '/usr/share/farm/marker')).trim()).toBe(src.token);
      expect(await readFromDisk(path, format, '/etc/motd')).toContain(src.token);
      if (format === 'raw') expect(await allocatedBytes(path)).toBeLessThan(disk.size / 2); // holes stayed holes
      // bib's manifest came along.
      expect(b.files.some((f) => /manifest-.*\.json$/.test(f.name))).toBe(true);
    }
    // ami and raw were separate builder runs: two distinct raw disks for x86_64.
    expect(byName.get('x86_64-ami')!.files[0]!.name).not.toBe(byName.get('x86_64-raw')!.files[0]!.name);

    // The summary the user reads lists the images.
    expect(r.stderr).toMatch(/\[x86_64\s*\].*fetched and verified 3 image/);
    for (const host of Object.values(HOSTS)) expect(await farmLeftovers(host)).toBe('');
  });

  it('prints a table of images without --json', async () => {
    const src = await markedSource((await labInventoryVariant()).dir);
    const variant = await labInventoryVariant((doc) => {
      doc.source.containerfile = src.containerfile;
      doc.source.context = src.context;
    });
    const r = await farm(['build', '--arch', 's390x', '--inventory', variant.file, '--quiet', '--no-upload']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/ARCH\s+TYPE\s+IMAGE NAME\s+SIZE\s+SHA256\s+SMOKE\s+PATH/);
    expect(r.stdout).toMatch(/s390x\s+qcow2\s+farm-lab-\d{8}-\d{6}-s390x\s+[\d.]+ \w+\s+[0-9a-f]{12}\s+off\s+\S+disk\.qcow2/);
  });

  it("a dead worker fails its arch clearly while the other arches succeed", async () => {
    const variant = await labInventoryVariant((doc) => {
      const w = doc.workers.find((x: { arch: string }) => x.arch === 's390x');
      w.port = 2222; // nothing listens there: connection refused
    });
    const r = await farm(['build', '--arch', 'x86_64,s390x', '--inventory', variant.file, '--quiet', '--no-upload']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/\[lab-s390x\]\s+warning: skipped: .*(refused|ECONNREFUSED)/i);
    expect(r.stderr).toMatch(/\[s390x\]\s+error: no healthy worker for s390x/);
    expect(r.stdout).toMatch(/x86_64\s+ami/);
    expect(r.stdout).toMatch(/failed:\n\s+s390x: no healthy worker/);
    const state = JSON.parse(await readFile(join(variant.dir, 'builds', /build (\S+):/.exec(r.stdout)![1]!, 'state.json'), 'utf8')) as BuildState;
    expect(state.status).toBe('partial');
    expect(state.arches.x86_64!.step).toBe('fetched');
    expect(state.arches.s390x!.step).toBe('failed');
  });

  it('refuses a worker whose host key changed and shows the fingerprint it saw', async () => {
    const variant = await labInventoryVariant();
    // known_hosts claiming another key for lab-x86_64's address.
    const { execFileSync } = await import('node:child_process');
    const keyFile = join(variant.dir, 'other_key');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', keyFile]);
    const other = (await readFile(`${keyFile}.pub`, 'utf8')).split(' ').slice(0, 2).join(' ');
    const kh = join(variant.dir, 'known_hosts');
    const x86 = variant.doc.workers.find((w: { arch: string }) => w.arch === 'x86_64');
    await writeFile(kh, `${x86.host} ${other}\n`);
    const v2 = await labInventoryVariant((doc) => {
      for (const w of doc.workers) w.known_hosts = kh;
    });
    const r = await farm(['build', '--arch', 'x86_64', '--inventory', v2.file, '--quiet', '--no-upload']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/host key/i);
    expect(r.stderr).toMatch(/SHA256:[A-Za-z0-9+/]{43}/);
    expect(r.stderr).toMatch(/no healthy worker for x86_64/);
    expect(await farmLeftovers(HOSTS.x86_64)).toBe('');
  });

  it('Ctrl-C stops the remote build and leaves nothing running on the worker', async () => {
    const variant = await labInventoryVariant();
    let sent = false;
    const r = await farm(['build', '--arch', 'ppc64le', '--inventory', variant.file, '--no-upload'], {
      onSpawn: (child) => {
        child.stderr!.on('data', (d: Buffer) => {
          if (!sent && /bootc-image-builder --type/.test(d.toString())) {
            sent = true;
            child.kill('SIGINT');
          }
        });
      },
    });
    expect(sent).toBe(true);
    expect(r.code).toBe(130);
    expect(r.stderr).toMatch(/SIGINT/);
    expect(await farmLeftovers(HOSTS.ppc64le)).toBe('');
  });
});

describe('bad inventories change nothing and say what to fix', () => {
  it('rejects an unknown arch and an unknown key with file, line and fix', async () => {
    const variant = await labInventoryVariant((doc) => {
      doc.workers[1].arch = 'arm64';
      doc.workers[0].hostname = 'x';
    });
    const r = await farm(['build', '--arch', 'all', '--inventory', variant.file, '--no-upload']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(new RegExp(`${variant.file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+:\\d+: workers\\[1\\]\\.arch`));
    expect(r.stderr).toMatch(/aarch64/);
    expect(r.stderr).toMatch(/workers\[0\]\.hostname/);
    await expect(stat(join(variant.dir, 'builds'))).rejects.toThrow(/ENOENT/);
  });
});
