// Pools on the lab, with the real CLI: VMs taken per build from the lab's resalloc stand-in
// (scripts/lab.d/resalloc: a fresh namespace host per ticket with sshd, podman, the lab images, the
// arch's `uname -m` and a blank loop data disk), prepared, and given back after success, failure
// and Ctrl-C; a ticket-wait past its bound; a host key other than known_hosts vouches for,
// refused; preparation that formats a blank disk, never one holding a filesystem, and changes
// nothing the second time.

import { execFile } from 'node:child_process';
import { mkdtemp, readFile, writeFile, cp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { REPO, farm } from '../support/cli.ts';
import { LAB_DIR, ensureLab, labEnv } from '../support/lab.ts';
import { ResallocProvider } from '../../workers/pools/resalloc.ts';
import { connectWorker } from '../../workers/ssh/session.ts';
import { prepareWorker, type PrepareSettings } from '../../workers/prepare.ts';
import type { BuildState } from '../../src/records/state.ts';

const run = promisify(execFile);
const RESALLOC = join(REPO, 'scripts', 'lab.d', 'resalloc');
// The lab clouds' env too: lab-pools.yaml takes x86_64 and aarch64 from the EC2 fake.
const env: Record<string, string> = { FARM_LAB_DIR: LAB_DIR };

/** The lab-pools inventory with absolute paths (and `change` applied) in a temp dir. */
async function poolsInventory(change: (doc: any) => void = () => {}): Promise<{ file: string; dir: string }> {
  const doc = parse(await readFile(join(REPO, 'inventory', 'lab-pools.yaml'), 'utf8'), { merge: true }) as any;
  const dir = await mkdtemp(join(tmpdir(), 'farm-pools-'));
  doc.source = { containerfile: join(REPO, 'inventory', 'lab', 'Containerfile'), context: join(REPO, 'inventory', 'lab') };
  doc.settings.builds_dir = join(dir, 'builds');
  for (const p of doc.pools) {
    if (p.settings.provider !== 'resalloc') continue; // aws: keys per VM (pools-aws.test.ts)
    p.settings = { ...p.settings, command: [RESALLOC], identity_file: join(LAB_DIR, 'ssh', 'id_ed25519'), known_hosts: join(LAB_DIR, 'ssh', 'known_hosts') };
  }
  change(doc);
  const file = join(dir, 'inventory.yaml');
  await writeFile(file, stringify(doc, { aliasDuplicateObjects: false }));
  return { file, dir };
}

async function openTickets(): Promise<string> {
  return (await run(RESALLOC, ['list'], { env: { ...process.env, ...env } })).stdout.trim();
}
async function poolNamespaces(): Promise<string[]> {
  return (await run('ip', ['netns', 'list'])).stdout.split('\n').filter((l) => l.startsWith('farmpool-'));
}
async function lastState(dir: string): Promise<BuildState> {
  const { stdout } = await run('sh', ['-c', `ls -d ${dir}/builds/2*/ | tail -1`]);
  return JSON.parse(await readFile(join(stdout.trim(), 'state.json'), 'utf8')) as BuildState;
}
/** Nothing of any pool VM is left: no ticket, no namespace, no loop device, no known_hosts line. */
async function expectAllGiveBack(state: BuildState): Promise<void> {
  expect(state.pools?.length).toBeGreaterThan(0);
  for (const p of state.pools ?? []) expect(p.at.released, `${p.pool} ${p.id}`).toBeTruthy();
  expect(await openTickets()).toBe('');
  expect(await poolNamespaces()).toEqual([]);
  const kh = await readFile(join(LAB_DIR, 'ssh', 'known_hosts'), 'utf8');
  expect(kh).not.toMatch(/^10\.231\.0\.1\d\d /m);
  expect((await run('losetup', ['-a'])).stdout).not.toContain(join(LAB_DIR, 'pool'));
}

beforeAll(async () => {
  await ensureLab();
  Object.assign(env, await labEnv(), { FARM_LAB_DIR: LAB_DIR });
}, 900_000);

describe('pools on the lab', () => {
  it('builds on pool VMs only, prepared, and gives every VM back', async () => {
    const inv = await poolsInventory();
    const r = await farm(['build', '--arch', 'x86_64,s390x', '--inventory', inv.file], { env });
    const out = r.stdout + r.stderr;
    expect(r.code, out).toBe(0);
    expect(out).toMatch(/prepare: data volume \/run\/lab-disks\/data on \/var\/lib\/farm\/output: formatted ext4 and mounted/);
    expect(out).toMatch(/prepare: tmpfs \/run size 1G: remounted/);
    expect(out).toMatch(/SSH ready [\d.]+ s after the request/);
    const state = await lastState(inv.dir);
    expect(state.status).toBe('succeeded');
    expect(state.pools!.map((p) => p.arch).sort()).toEqual(['s390x', 'x86_64']);
    expect(state.arches.s390x!.runs![0]!.worker).toMatch(/^resalloc-s390x-\d+$/);
    await expectAllGiveBack(state);
  }, 600_000);

  it('gives the VM back after a failed build', async () => {
    const ctx = await mkdtemp(join(tmpdir(), 'farm-pools-ctx-'));
    await cp(join(REPO, 'inventory', 'lab'), ctx, { recursive: true });
    await writeFile(join(ctx, 'Containerfile'), 'FROM localhost/farm-lab/base:latest\nRUN exit 3\n');
    const inv = await poolsInventory((d) => (d.source = { containerfile: join(ctx, 'Containerfile'), context: ctx }));
    const r = await farm(['build', '--arch', 'ppc64le', '--inventory', inv.file], { env });
    expect(r.code).not.toBe(0);
    const state = await lastState(inv.dir);
    expect(state.arches.ppc64le!.step).toBe('failed');
    await expectAllGiveBack(state);
  }, 600_000);

  it('gives the VM back after Ctrl-C', async () => {
    const inv = await poolsInventory();
    let seen = '';
    const r = await farm(['build', '--arch', 'ppc64le', '--inventory', inv.file], {
      env,
      onSpawn: (child) => {
        const watch = (d: Buffer) => {
          seen += d.toString();
          if (/SSH ready/.test(seen) && !child.killed) child.kill('SIGINT');
        };
        child.stdout!.on('data', watch);
        child.stderr!.on('data', watch);
      },
    });
    expect(r.code).not.toBe(0);
    expect(r.stdout + r.stderr).toMatch(/given back \(resalloc \d+\)/);
    const state = await lastState(inv.dir);
    expect(state.status).toBe('cancelled');
    await expectAllGiveBack(state);
  }, 600_000);

  it('a ticket-wait past its bound fails naming the ticket and tags, and closes the ticket', async () => {
    const inv = await poolsInventory((d) => {
      const p = d.pools.find((x: any) => x.arch === 'ppc64le');
      p.settings.tags = ['arch_ppc64le', 'delay_60'];
      p.settings.wait_timeout = '3s';
    });
    const t0 = Date.now();
    const r = await farm(['build', '--arch', 'ppc64le', '--inventory', inv.file], { env });
    expect(Date.now() - t0).toBeLessThan(45_000);
    expect(r.code).not.toBe(0);
    expect(r.stdout + r.stderr).toMatch(/resalloc ticket \d+ \(tags arch_ppc64le, delay_60\) of pool resalloc-ppc64le not ready after 3 s; the ticket was closed/);
    expect(await openTickets()).toBe('');
    expect(await poolNamespaces()).toEqual([]);
  }, 120_000);

  it('refuses a VM whose host key is not the one known_hosts vouches for, and gives it back', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'farm-pools-kh-'));
    await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'other')]);
    const other = (await readFile(join(dir, 'other.pub'), 'utf8')).split(' ').slice(0, 2).join(' ');
    const lines = Array.from({ length: 89 }, (_, i) => `10.231.0.${101 + i} ${other}`).join('\n');
    await writeFile(join(dir, 'known_hosts'), lines + '\n');
    const inv = await poolsInventory((d) => {
      for (const p of d.pools) if (p.settings.provider === 'resalloc') p.settings.known_hosts = join(dir, 'known_hosts');
    });
    const r = await farm(['build', '--arch', 'ppc64le', '--inventory', inv.file], { env });
    const out = r.stdout + r.stderr;
    expect(r.code).not.toBe(0);
    expect(out).toMatch(/host key/i);
    expect(out).toMatch(/no healthy worker for ppc64le/);
    await expectAllGiveBack(await lastState(inv.dir));
  }, 300_000);

  it('preparation formats a blank disk, never one holding a filesystem, and a second run changes nothing', async () => {
    const provider = new ResallocProvider('prep', {
      command: [RESALLOC],
      tags: ['arch_x86_64'],
      wait_timeout_s: 180,
      user: 'root',
      port: 22,
      known_hosts: join(LAB_DIR, 'ssh', 'known_hosts'),
      identity_file: join(LAB_DIR, 'ssh', 'id_ed25519'),
      pass_env: ['FARM_LAB_DIR'],
    });
    process.env.FARM_LAB_DIR = LAB_DIR;
    const signal = new AbortController().signal;
    const a = await provider.allocate(signal);
    try {
      const t = await connectWorker({
        name: 'prep',
        ...a.endpoint,
        arch: 'x86_64',
        podman_socket: '/run/podman/podman.sock',
        storage: '/var/lib/containers/storage',
        output_dir: '/var/lib/farm/output',
        min_free_gib: { storage: 0, output: 0 },
      });
      try {
        const s: PrepareSettings = {
          data_volume: { device: '/run/lab-disks/data', mount: '/mnt/data', fs: 'ext4', format: 'if-blank' },
          tmpfs: { run: '512M', tmp: '1G' },
          podman_socket: true,
          builder_image: { image: 'localhost/farm-lab/bootc-image-builder:latest', pull: 'never' },
        };
        const first = await prepareWorker(t, s, signal);
        expect(first.map((x) => [x.changed, x.detail])).toEqual([
          [true, 'formatted ext4 and mounted'],
          [true, 'remounted (was unbounded)'],
          [true, 'mounted (was ext4)'],
          [false, '/run/podman/podman.sock listening (no systemd)'],
          [false, 'present'],
        ]);
        const second = await prepareWorker(t, s, signal);
        expect(second.every((x) => !x.changed), JSON.stringify(second)).toBe(true);

        // A filesystem with data on it: unmounted, then prepared again, it is mounted as it is.
        await t.exec(['sh', '-c', 'echo kept >/mnt/data/marker && umount /mnt/data']);
        const third = await prepareWorker(t, s, signal);
        expect(third[0]).toMatchObject({ changed: true, detail: 'holds ext4: mounted as it is (never formatted)' });
        expect((await t.exec(['cat', '/mnt/data/marker'])).stdout).toBe('kept\n');

        // Something that is not a filesystem to mount (swap) is refused without format: force...
        await t.exec(['sh', '-c', 'umount /mnt/data && mkswap /run/lab-disks/data >/dev/null']);
        await expect(prepareWorker(t, s, signal)).rejects.toThrow(/holds swap, which is never formatted without format: force/);
        // ... and replaced with it.
        const forced = await prepareWorker(t, { ...s, data_volume: { ...s.data_volume!, format: 'force' } }, signal);
        expect(forced[0]!.detail).toBe('swap replaced (format: force), formatted ext4 and mounted');
      } finally {
        await t.close();
      }
    } finally {
      await provider.release(a);
    }
    expect(await openTickets()).toBe('');
    expect(await poolNamespaces()).toEqual([]);
  }, 300_000);
});

describe('a killed coordinator', () => {
  it("leaves records from which the next run's sweep gives its VM back", async () => {
    const inv = await poolsInventory();
    let seen = '';
    const killed = await farm(['build', '--arch', 'ppc64le', '--inventory', inv.file], {
      env,
      onSpawn: (child) => {
        const watch = (d: Buffer) => {
          seen += d.toString();
          if (/SSH ready/.test(seen) && !child.killed) child.kill('SIGKILL');
        };
        child.stdout!.on('data', watch);
        child.stderr!.on('data', watch);
      },
    });
    expect(killed.signal).toBe('SIGKILL');
    const left = await lastState(inv.dir);
    expect(left.pools).toHaveLength(1);
    expect(left.pools![0]!.at.released).toBeUndefined();
    expect(await openTickets()).not.toBe('');

    const dry = await farm(['workers', 'sweep', '--dry-run', '--json', '--inventory', inv.file], { env });
    expect(JSON.parse(dry.stdout)).toEqual([expect.objectContaining({ pool: 'resalloc-ppc64le', reason: 'its coordinator is gone', outcome: 'would be given back' })]);
    expect(await openTickets()).not.toBe('');

    const next = await farm(['build', '--arch', 'ppc64le', '--inventory', inv.file], { env });
    expect(next.code, next.stdout + next.stderr).toBe(0);
    expect(next.stdout + next.stderr).toMatch(new RegExp(`sweep: resalloc-ppc64le resalloc ${left.pools![0]!.id} of build ${left.buildId} \\(its coordinator is gone\\): given back`));
    const old = JSON.parse(await readFile(join(inv.dir, 'builds', left.buildId, 'state.json'), 'utf8')) as BuildState;
    expect(old.pools![0]).toMatchObject({ releasedBy: 'sweep' });
    expect(old.status).toBe('failed');
    await expectAllGiveBack(await lastState(inv.dir));
    const after = await farm(['workers', 'sweep', '--json', '--inventory', inv.file], { env });
    expect(JSON.parse(after.stdout)).toEqual([]);
  }, 600_000);
});
