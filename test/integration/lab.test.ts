// The lab itself (scripts/lab): real sshd, podman and the stand-in bootc-image-builder in four
// network + mount namespaces. Each check asks the host itself, over OpenSSH with pinned host keys
// or inside its namespaces, and reads the disks the stand-in writes back with e2fsprogs/qemu-img.

import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { access, mkdtemp, open, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO } from '../support/cli.ts';
import { ensureLab, LAB_DIR, LAB_SCRIPT, labExec } from '../support/lab.ts';
import { allocatedBytes, partitions, qemuImgFormat, readFromDisk } from '../support/disk.ts';

const HOSTS = [
  { arch: 'x86_64', name: 'lab-x86_64', addr: '10.231.0.11' },
  { arch: 'aarch64', name: 'lab-aarch64', addr: '10.231.0.12' },
  { arch: 'ppc64le', name: 'lab-ppc64le', addr: '10.231.0.13' },
  { arch: 's390x', name: 'lab-s390x', addr: '10.231.0.14' },
] as const;

const KEY = join(LAB_DIR, 'ssh', 'id_ed25519');
const KNOWN_HOSTS = join(LAB_DIR, 'ssh', 'known_hosts');
const BIB = 'localhost/farm-lab/bootc-image-builder:latest';
const STORAGE = '/var/lib/containers/storage';

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion; a non-zero exit is a result, not an exception. */
function sh(cmd: string, args: string[], timeout = 300_000): Promise<Result> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

function ssh(addr: string, remote: string, knownHosts = KNOWN_HOSTS): Promise<Result> {
  return sh('ssh', [
    '-i', KEY,
    '-o', 'IdentitiesOnly=yes',
    '-o', 'BatchMode=yes',
    '-o', 'StrictHostKeyChecking=yes',
    '-o', `UserKnownHostsFile=${knownHosts}`,
    '-o', 'GlobalKnownHostsFile=/dev/null',
    '-o', 'ConnectTimeout=10',
    `root@${addr}`,
    remote,
  ]);
}

function labExecResult(host: string, argv: string[]): Promise<Result> {
  return sh(LAB_SCRIPT, ['exec', host, '--', ...argv]);
}

/** Where a host's /var/lib/farm lives as seen from the root namespace (this test process). */
const hostFarmDir = (name: string) => join(LAB_DIR, 'hosts', name, 'var-lib-farm');

const RUN_ID = randomBytes(4).toString('hex');
const IMAGE = `localhost/farm-lab/lab-test-${RUN_ID}:latest`;
const OUT = `lab-test-${RUN_ID}`; // under /var/lib/farm on the hosts
const built: string[] = [];

beforeAll(async () => {
  await ensureLab();
});

afterAll(async () => {
  for (const name of built) {
    await labExecResult(name, ['podman', 'rmi', '--force', IMAGE]);
    await labExecResult(name, ['rm', '-rf', `/var/lib/farm/${OUT}`]);
  }
});

describe('scripts/lab', () => {
  it('reports every host up', async () => {
    const r = await sh(LAB_SCRIPT, ['status']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    for (const h of HOSTS) {
      expect(r.stdout).toMatch(new RegExp(`${h.name}\\s+farmlab-${h.arch}\\s+${h.addr.replace(/\./g, '\\.')}\\s+up pid \\d+\\s+up\\s+base,bootc-image-builder`));
    }
  });

  it('pins each host key in known_hosts', async () => {
    const lines = (await readFile(KNOWN_HOSTS, 'utf8')).split('\n');
    for (const h of HOSTS) {
      const hostKey = (await readFile(join(LAB_DIR, 'hosts', h.name, 'ssh_host_ed25519_key.pub'), 'utf8')).split(' ').slice(0, 2).join(' ');
      expect(lines).toContain(`${h.addr} ${hostKey}`);
    }
  });

  it.each(HOSTS)('$name answers OpenSSH with the lab key, as its own arch, in its own namespaces', async (h) => {
    const r = await ssh(h.addr, 'uname -m; uname -s; uname -a; arch; hostname; ip -4 -o addr show dev eth0; grep " /var/lib/containers/storage " /proc/self/mountinfo');
    expect(r.code, r.stderr).toBe(0);
    const [machine, kernel, all, arch, hostname, addr, storage] = r.stdout.trim().split('\n');
    expect(machine).toBe(h.arch);
    expect(kernel).toBe('Linux'); // other uname flags still come from the real binary
    expect(all).toMatch(new RegExp(`^Linux ${h.name} \\S+ .* ${h.arch} GNU/Linux$`));
    expect(arch).toBe(h.arch);
    expect(hostname).toBe(h.name);
    expect(addr).toContain(` ${h.addr}/24 `);
    // The host's storage is its own directory under .lab, bind-mounted in its mount namespace.
    expect(storage?.split(' ')[3]).toBe(join(LAB_DIR, 'hosts', h.name, 'storage'));
  });

  it('refuses a host whose key does not match the pinned one', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'farm-lab-kh-'));
    try {
      // aarch64's key under x86_64's address: a man in the middle, as far as ssh can tell.
      const other = (await readFile(join(LAB_DIR, 'hosts', 'lab-aarch64', 'ssh_host_ed25519_key.pub'), 'utf8')).split(' ').slice(0, 2).join(' ');
      const wrong = join(dir, 'known_hosts');
      await writeFile(wrong, `10.231.0.11 ${other}\n`);
      const r = await ssh('10.231.0.11', 'true', wrong);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/REMOTE HOST IDENTIFICATION HAS CHANGED|Host key verification failed/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("forwards podman's API socket over SSH (what the farm's transport does)", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'farm-lab-fwd-'));
    const local = join(dir, 'podman.sock');
    const child = spawn('ssh', [
      '-i', KEY, '-o', 'IdentitiesOnly=yes', '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=yes',
      '-o', `UserKnownHostsFile=${KNOWN_HOSTS}`, '-o', 'GlobalKnownHostsFile=/dev/null', '-o', 'ExitOnForwardFailure=yes',
      '-N', '-L', `${local}:/run/podman/podman.sock`, 'root@10.231.0.13',
    ], { stdio: 'ignore' });
    try {
      for (let i = 0; i < 100; i++) {
        if (await access(local).then(() => true, () => false)) break;
        await sleep(100);
      }
      const r = await sh('curl', ['-sf', '--max-time', '10', '--unix-socket', local, 'http://d/v1.41/info']);
      expect(r.code, r.stderr).toBe(0);
      // The answer comes from the ppc64le host's podman (its own UTS namespace names it).
      const info = JSON.parse(r.stdout) as { Name: string };
      expect(info.Name).toBe('lab-ppc64le');
    } finally {
      child.kill('SIGTERM');
      await rm(dir, { recursive: true, force: true });
    }
  });

  it.each(HOSTS)("$name serves podman's API on /run/podman/podman.sock", async (h) => {
    const out = await labExec(h.name, ['curl', '-sf', '--max-time', '10', '--unix-socket', '/run/podman/podman.sock', 'http://d/v1.41/version']);
    const v = JSON.parse(out) as { Version: string; Os: string; Components?: { Name: string }[] };
    expect(v.Os).toBe('linux');
    expect(v.Version).toMatch(/^\d+\.\d+\.\d+/);
    const images = JSON.parse(
      await labExec(h.name, ['curl', '-sf', '--max-time', '10', '--unix-socket', '/run/podman/podman.sock', 'http://d/v1.41/images/json']),
    ) as { RepoTags: string[] | null }[];
    const tags = images.flatMap((i) => i.RepoTags ?? []);
    expect(tags).toContain('localhost/farm-lab/base:latest');
    expect(tags).toContain(BIB);
  });
});

describe('stand-in bootc-image-builder', () => {
  async function buildLabImage(name: string): Promise<string> {
    built.push(name);
    const context = join(REPO, 'inventory', 'lab');
    const r = await labExecResult(name, ['podman', 'build', '-q', '-t', IMAGE, '-f', join(context, 'Containerfile'), context]);
    expect(r.code, r.stderr).toBe(0);
    return r.stdout.trim().split('\n').pop()!;
  }

  function bib(name: string, flags: string[], args: string[]): Promise<Result> {
    return labExecResult(name, ['podman', 'run', '--rm', ...flags, BIB, ...args]);
  }

  it('turns the lab image into a raw disk and a qcow2 holding its files (x86_64)', async () => {
    const id = await buildLabImage('lab-x86_64');
    await labExec('lab-x86_64', ['mkdir', '-p', `/var/lib/farm/${OUT}/x86`]);
    const r = await bib(
      'lab-x86_64',
      ['--privileged', '-v', `${STORAGE}:${STORAGE}`, '-v', `/var/lib/farm/${OUT}/x86:/output`],
      ['--type', 'raw', '--type', 'qcow2', '--rootfs', 'ext4', '--progress', 'verbose', IMAGE],
    );
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/Build complete!/);

    const out = join(hostFarmDir('lab-x86_64'), OUT, 'x86');
    const raw = join(out, 'image', 'disk.raw');
    const qcow2 = join(out, 'qcow2', 'disk.qcow2');

    const { parts } = await partitions(raw);
    expect(parts.map((p) => p.type.toUpperCase())).toEqual(['C12A7328-F81F-11D2-BA4B-00A0C93EC93B', '0FC63DAF-8483-4772-8E79-3D69D8477DE4']);
    expect(await readFromDisk(raw, 'raw', '/usr/share/farm/marker')).toBe('farm lab image\n');
    expect(await readFromDisk(raw, 'raw', '/etc/motd')).toBe(await readFile(join(REPO, 'inventory', 'lab', 'motd'), 'utf8'));
    // 1 GiB apparent, a few MiB really written.
    expect((await stat(raw)).size).toBe(2 ** 30);
    expect(await allocatedBytes(raw)).toBeLessThan(64 * 2 ** 20);

    expect(await qemuImgFormat(qcow2)).toBe('qcow2');
    expect(await readFromDisk(qcow2, 'qcow2', '/usr/share/farm/marker')).toBe('farm lab image\n');

    const manifest = JSON.parse(await readFile(join(out, 'manifest-raw-qcow2.json'), 'utf8'));
    expect(manifest).toMatchObject({ arch: 'x86_64', rootfs: 'ext4', types: ['raw', 'qcow2'], image: { ref: IMAGE } });
    expect(id).toMatch(/^[0-9a-f]{64}$/);
    expect(manifest.image.id).toBe(id);
  });

  it("writes the host's arch into the manifest and only the qcow2 when only qcow2 is asked (s390x)", async () => {
    await buildLabImage('lab-s390x');
    await labExec('lab-s390x', ['mkdir', '-p', `/var/lib/farm/${OUT}/s390x`]);
    const r = await bib(
      'lab-s390x',
      ['--privileged', '-v', `${STORAGE}:${STORAGE}`, '-v', `/var/lib/farm/${OUT}/s390x:/output`],
      ['build', '--type', 'qcow2', '--rootfs', 'ext4', '--chown', '1000:1000', IMAGE],
    );
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const out = join(hostFarmDir('lab-s390x'), OUT, 's390x');
    const ls = await labExec('lab-s390x', ['find', `/var/lib/farm/${OUT}/s390x`, '-mindepth', '1', '-printf', '%P %U:%G\n']);
    expect(ls.trim().split('\n').sort()).toEqual(['manifest-qcow2.json 1000:1000', 'qcow2 1000:1000', 'qcow2/disk.qcow2 1000:1000']);
    const manifest = JSON.parse(await readFile(join(out, 'manifest-qcow2.json'), 'utf8'));
    expect(manifest.arch).toBe('s390x');
    expect(await qemuImgFormat(join(out, 'qcow2', 'disk.qcow2'))).toBe('qcow2');
  });

  it('writes an xfs root filesystem when asked, as Fedora images default to (ppc64le)', async () => {
    await buildLabImage('lab-ppc64le');
    await labExec('lab-ppc64le', ['mkdir', '-p', `/var/lib/farm/${OUT}/xfs`]);
    const r = await bib(
      'lab-ppc64le',
      ['--privileged', '-v', `${STORAGE}:${STORAGE}`, '-v', `/var/lib/farm/${OUT}/xfs:/output`],
      ['--type', 'raw', '--type', 'qcow2', '--rootfs', 'xfs', IMAGE],
    );
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const out = join(hostFarmDir('lab-ppc64le'), OUT, 'xfs');
    const raw = join(out, 'image', 'disk.raw');
    const { sectorSize, parts } = await partitions(raw);
    // SLOF boots GRUB from the PReP partition in front of the root filesystem.
    expect(parts[0]!.type.toUpperCase()).toBe('9E1A2D38-C612-4316-AA26-8B49521E5A8B');
    const magic = Buffer.alloc(4);
    const fh = await open(raw, 'r');
    await fh.read(magic, 0, 4, parts[1]!.start * sectorSize).finally(() => fh.close());
    expect(magic.toString('latin1')).toBe('XFSB');
    expect(await readFromDisk(raw, 'raw', '/usr/share/farm/marker')).toBe('farm lab image\n');
    expect(await readFromDisk(raw, 'raw', '/etc/motd')).toBe(await readFile(join(REPO, 'inventory', 'lab', 'motd'), 'utf8'));
    expect(await readFromDisk(join(out, 'qcow2', 'disk.qcow2'), 'qcow2', '/usr/share/farm/marker')).toBe('farm lab image\n');
    // Still sparse: the image's files (its kernel is most of them) and xfs's metadata, no more.
    const imageBytes = Number((await labExec('lab-ppc64le', ['podman', 'image', 'inspect', '--format', '{{.Size}}', IMAGE])).trim());
    expect(await allocatedBytes(raw)).toBeLessThan(imageBytes + 16 * 2 ** 20);
    const manifest = JSON.parse(await readFile(join(out, 'manifest-raw-qcow2.json'), 'utf8'));
    expect(manifest).toMatchObject({ arch: 'ppc64le', rootfs: 'xfs' });
    expect(manifest.disk.partition_table.partitions[1].filesystem).toBe('xfs');
  });

  it('refuses to run without --privileged', async () => {
    const r = await bib('lab-aarch64', ['-v', `${STORAGE}:${STORAGE}`], ['--type', 'raw', '--rootfs', 'ext4', 'localhost/farm-lab/base:latest']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('this command requires a privileged container');
  });

  it('refuses to run without the host storage mounted', async () => {
    const r = await bib('lab-aarch64', ['--privileged'], ['--type', 'raw', '--rootfs', 'ext4', 'localhost/farm-lab/base:latest']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`could not access container storage, did you forget -v ${STORAGE}:${STORAGE}?`);
  });

  it('refuses to mix disk and ISO types, like bib', async () => {
    const r = await bib('lab-aarch64', ['--privileged', '-v', `${STORAGE}:${STORAGE}`], ['--type', 'qcow2', '--type', 'anaconda-iso', 'localhost/farm-lab/base:latest']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('cannot mix ISO/disk images in request [qcow2 anaconda-iso]');
  });

  it('refuses an image built for another arch, as bib does', async () => {
    // The stand-in's own image is this machine's (amd64); lab-aarch64 builds aarch64 disks.
    const r = await bib('lab-aarch64', ['--privileged', '-v', `${STORAGE}:${STORAGE}`], ['--type', 'raw', '--rootfs', 'ext4', BIB]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('image found is for unexpected architecture "x86_64" (expected "aarch64"), if that is intentional, please make sure --target-arch matches');
  });

  it('names an image that is not in the storage', async () => {
    const r = await bib('lab-aarch64', ['--privileged', '-v', `${STORAGE}:${STORAGE}`], ['--type', 'raw', '--rootfs', 'ext4', `localhost/farm-lab/missing-${RUN_ID}`]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`cannot find image "localhost/farm-lab/missing-${RUN_ID}"`);
  });
});
