// The libvirt uploader against real libvirtd hypervisors in the lab (scripts/lab.d/services/
// libvirt.sh): x86_64 at 10.231.0.21 and ppc64le at 10.231.0.22, reached over qemu+ssh with the
// lab key and host keys verified. Volumes are checked independently, through each hypervisor's own
// libvirtd and the pool files, never through the uploader.

import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, open, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FarmError } from '../../src/core/errors.ts';
import { libvirtTargetSchema, type LibvirtTarget } from '../../uploaders/libvirt/schema.ts';
import type { Arch } from '../../src/core/arch.ts';
import { createLibvirtUploader, wrapperScript, type LibvirtUploaderOptions } from '../../uploaders/libvirt/index.ts';
import type { UploadContext, UploadProgress } from '../../uploaders/uploader.ts';
import type { Artifact, DiskFormat } from '../../src/core/artifact.ts';
import { allocatedBytes, sha256sum } from '../support/disk.ts';
import { TestJournal } from '../support/journal.ts';
import {
  ensureHypervisors,
  hypervisorExec,
  hypervisorRxBytes,
  poolFile,
  poolVolumes,
  removeVolume,
  type HypervisorArch,
  type LabHypervisor,
} from '../support/libvirt.ts';

const run = promisify(execFile);
const MiB = 1 << 20;
const RUN = randomBytes(3).toString('hex');
const MARKER = `FARM-LIBVIRT-MARKER-${RUN}`;

let hvs: LabHypervisor[];
let dir: string;
const made: Array<[HypervisorArch, string]> = [];

function volName(what: string): string {
  const n = `farm-it-${RUN}-${what}`;
  made.push(['x86_64', n], ['ppc64le', n]);
  return n;
}

function labTarget(over: Partial<LibvirtTarget> & { knownHosts?: string; hostKey?: string } = {}): LibvirtTarget {
  const { knownHosts, hostKey, ...rest } = over;
  return libvirtTargetSchema.parse({
    kind: 'libvirt',
    name: 'lab-libvirt',
    hypervisors: hvs.map((h) => ({
      uri: h.uri,
      arch: h.arch,
      identity_file: h.identityFile,
      ...(hostKey ? { host_key: hostKey } : { known_hosts: knownHosts ?? h.knownHosts }),
    })),
    ...rest,
  });
}

/** A sparse raw disk: `size` apparent, markers at 1 MiB and near the end, `dataMiB` of random data. */
async function sparseRaw(path: string, size: number, dataMiB: number): Promise<void> {
  const fh = await open(path, 'w');
  try {
    await fh.truncate(size);
    await fh.write(Buffer.from(MARKER), 0, MARKER.length, MiB);
    for (let i = 0; i < dataMiB; i++) await fh.write(randomBytes(MiB), 0, MiB, 64 * MiB + i * MiB);
    await fh.write(Buffer.from(MARKER), 0, MARKER.length, size - 64 * 1024);
  } finally {
    await fh.close();
  }
}

async function artifactOf(path: string, format: DiskFormat, arch: Arch = 'x86_64'): Promise<Artifact> {
  const { size } = await stat(path);
  return {
    buildId: `it-${RUN}`,
    arch,
    type: format === 'raw' ? 'raw' : 'qcow2',
    imageName: 'unused',
    disk: { path, name: `disk.${format}`, size, sha256: await sha256sum(path), format },
    extra: [],
    worker: 'lab',
    builtAt: new Date().toISOString(),
  };
}

function ctx(over: Partial<UploadContext> = {}): UploadContext & { logs: string[]; progress: UploadProgress[] } {
  const logs: string[] = [];
  const progress: UploadProgress[] = [];
  return { signal: new AbortController().signal, log: (m) => logs.push(m), onProgress: (p) => progress.push(p), tags: {}, logs, progress, ...over };
}

async function volInfo(arch: HypervisorArch, name: string): Promise<{ capacity: number; format: string }> {
  const info = await hypervisorExec(arch, ['virsh', '-q', '-c', 'qemu:///system', 'vol-info', '--pool', 'images', '--vol', name, '--bytes']);
  const xml = await hypervisorExec(arch, ['virsh', '-q', '-c', 'qemu:///system', 'vol-dumpxml', '--pool', 'images', '--vol', name]);
  return { capacity: Number(/^Capacity:\s+(\d+) bytes/m.exec(info)![1]), format: /<format type='(\w+)'\/>/.exec(xml)![1]! };
}

async function readAt(file: string, offset: number, length: number): Promise<string> {
  const fh = await open(file, 'r');
  try {
    const buf = Buffer.alloc(length);
    await fh.read(buf, 0, length, offset);
    return buf.toString();
  } finally {
    await fh.close();
  }
}

/** Command lines of live processes that mention `text` (an ssh master shows as "ssh: <socket> [mux]"). */
async function processesMentioning(text: string): Promise<string[]> {
  const found: string[] = [];
  for (const pid of (await readdir('/proc')).filter((n) => /^\d+$/.test(n))) {
    const cmd = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (cmd.includes(text)) found.push(cmd.replace(/\0/g, ' ').trim());
  }
  return found;
}

/** What the wrapper left under `root`: its files, and processes (an ssh master) naming it, given a moment to exit. */
async function leftUnder(root: string): Promise<{ files: string[]; procs: string[] }> {
  let procs = await processesMentioning(root);
  for (let i = 0; i < 30 && procs.length > 0; i++) {
    await new Promise((r) => setTimeout(r, 100));
    procs = await processesMentioning(root);
  }
  return { files: await readdir(root), procs };
}

/** The wrappers' directories under `root` and what is in them (an ssh master's socket is cm-<hex>). */
async function wrapperFiles(root: string): Promise<string[]> {
  const out: string[] = [];
  for (const d of await readdir(root).catch(() => [] as string[])) for (const f of await readdir(join(root, d)).catch(() => [] as string[])) out.push(f);
  return out;
}

let raw256: string;
let qcow2: string;

beforeAll(async () => {
  hvs = await ensureHypervisors();
  dir = await mkdtemp(join(tmpdir(), 'farm-libvirt-it-'));
  raw256 = join(dir, 'disk.raw');
  await sparseRaw(raw256, 256 * MiB, 4);
  qcow2 = join(dir, 'disk.qcow2');
  await run('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', raw256, qcow2]);
});

afterAll(async () => {
  for (const [arch, name] of made) await removeVolume(arch, name).catch(() => {});
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('libvirt uploader on the lab hypervisors', () => {
  it('preflight connects to every hypervisor with its host key verified and finds the pool active', async () => {
    await createLibvirtUploader(labTarget()).preflight(new AbortController().signal);
  });

  it('preflight names a missing pool and the hypervisor', async () => {
    const err = await createLibvirtUploader(labTarget({ pool: 'nopool' })).preflight(new AbortController().signal).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FarmError);
    expect((err as FarmError).message).toMatch(/pool 'nopool' does not exist on hypervisor qemu\+ssh:\/\/root@10\.231\.0\.21\/system/);
    expect((err as FarmError).message).toMatch(/10\.231\.0\.22/);
    expect((err as FarmError).message).not.toMatch(/keyfile|command=/);
  });

  it('uploads a sparse raw: right capacity, identical content, sparse on the hypervisor, only the data on the wire', async () => {
    const name = volName('raw');
    const artifact = await artifactOf(raw256, 'raw');
    const up = createLibvirtUploader(labTarget({ image_type: 'raw' }), { sampleMs: 100 });
    const c = ctx();
    const rx0 = await hypervisorRxBytes('x86_64');
    const images = await up.upload(artifact, name, c);
    const rx = (await hypervisorRxBytes('x86_64')) - rx0;

    expect(images).toEqual([
      {
        target: 'lab-libvirt',
        kind: 'libvirt',
        location: '10.231.0.21',
        imageName: name,
        imageId: poolFile('x86_64', name),
        artifactId: `10.231.0.21:${poolFile('x86_64', name)}`,
        existing: false,
      },
    ]);
    expect(await volInfo('x86_64', name)).toEqual({ capacity: 256 * MiB, format: 'raw' });
    const file = poolFile('x86_64', name);
    expect(await sha256sum(file)).toBe(artifact.disk.sha256);
    expect(await readAt(file, MiB, MARKER.length)).toBe(MARKER);
    expect(await readAt(file, 256 * MiB - 64 * 1024, MARKER.length)).toBe(MARKER);
    const data = await allocatedBytes(raw256);
    expect(await allocatedBytes(file)).toBeLessThanOrEqual(data + MiB); // holes stayed holes
    // 4 MiB of data, 256 MiB apparent: the wire carries the data plus SSH/RPC framing only.
    expect(rx).toBeGreaterThan(data);
    expect(rx).toBeLessThan(data * 1.1 + MiB);
    // Only the x86_64 hypervisor got it; the ppc64le one was skipped, and the log says so.
    expect(await poolVolumes('ppc64le')).not.toContain(name);
    expect(c.logs.some((l) => /skipping hypervisor qemu\+ssh:\/\/root@10\.231\.0\.22\/system: it runs ppc64le guests/.test(l))).toBe(true);
    const last = c.progress.at(-1)!;
    expect(last).toMatchObject({ phase: 'upload', done: 256 * MiB, total: 256 * MiB });
    expect(last.sent).toBeGreaterThanOrEqual(data);
    expect(last.sent).toBeLessThan(data * 1.1 + MiB);

    // find() sees it; a second upload publishes the existing volume without sending it again.
    const found = await up.find(name, artifact, new AbortController().signal);
    expect(found).toEqual([{ ...images[0], existing: true }]);
    const rx1 = await hypervisorRxBytes('x86_64');
    const again = await up.upload(artifact, name, ctx());
    expect(again).toEqual([{ ...images[0], existing: true }]);
    expect((await hypervisorRxBytes('x86_64')) - rx1).toBeLessThan(MiB);

    // delete() removes it; find() then reports nothing.
    await up.delete(images[0]!, new AbortController().signal);
    expect(await poolVolumes('x86_64')).not.toContain(name);
    expect(await up.find(name, artifact, new AbortController().signal)).toEqual([]);
  });

  it('shares one SSH connection per hypervisor: a master on a socket in the private dir, ended when the upload is done', async () => {
    const name = volName('shared');
    const root = await mkdtemp(join(tmpdir(), 'lv-'));
    let during: { files: string[]; masters: string[] } | undefined;
    const c = ctx({
      onProgress: (p) => {
        if (p.phase !== 'upload' || during) return;
        during = { files: [], masters: [] };
        void wrapperFiles(root).then((f) => (during!.files = f));
        void processesMentioning(root).then((m) => (during!.masters = m.filter((l) => l.endsWith('[mux]'))));
      },
    });
    await createLibvirtUploader(labTarget({ image_type: 'raw' }), { tmpRoot: root, sampleMs: 50 }).upload(await artifactOf(raw256, 'raw'), name, c);
    expect(await volInfo('x86_64', name)).toEqual({ capacity: 256 * MiB, format: 'raw' });
    // While uploading (lookup and create already done through it), the master served the upload.
    expect(during?.files.filter((f) => /^cm-[0-9a-f]{40}$/.test(f))).toHaveLength(1);
    expect(during?.masters).toHaveLength(1);
    expect(during?.masters[0]).toContain(join(root, 'farm-libvirt-'));
    // Afterwards: no master, no socket, no directory.
    expect(await leftUnder(root)).toEqual({ files: [], procs: [] });
    await rm(root, { recursive: true, force: true });
  });

  it('converts a qcow2 to sparse raw before upload and removes the temp file', async () => {
    const name = volName('conv');
    const artifact = await artifactOf(qcow2, 'qcow2');
    const c = ctx();
    const images = await createLibvirtUploader(labTarget({ image_type: 'qcow2', convert_to_raw: true })).upload(artifact, name, c);
    expect(images).toHaveLength(1);
    expect(await volInfo('x86_64', name)).toEqual({ capacity: 256 * MiB, format: 'raw' });
    const file = poolFile('x86_64', name);
    expect(await sha256sum(file)).toBe(await sha256sum(raw256)); // the guest sees the same disk
    expect(await allocatedBytes(file)).toBeLessThanOrEqual((await allocatedBytes(raw256)) + MiB);
    expect(c.progress.some((p) => p.phase === 'convert')).toBe(true);
    expect((await readdir(dir)).filter((f) => f.includes('farm-raw'))).toEqual([]);
  });

  it('uploads the qcow2 itself when convert_to_raw is false', async () => {
    const name = volName('qcow2');
    const artifact = await artifactOf(qcow2, 'qcow2');
    await createLibvirtUploader(labTarget({ image_type: 'qcow2', convert_to_raw: false })).upload(artifact, name, ctx());
    expect(await volInfo('x86_64', name)).toEqual({ capacity: 256 * MiB, format: 'qcow2' });
    expect(await sha256sum(poolFile('x86_64', name))).toBe(artifact.disk.sha256);
  });

  it('sends a ppc64le image only to the ppc64le hypervisor', async () => {
    const name = volName('ppc');
    const artifact = await artifactOf(raw256, 'raw', 'ppc64le');
    const c = ctx();
    const images = await createLibvirtUploader(labTarget({ image_type: 'raw' })).upload(artifact, name, c);
    expect(images.map((i) => i.location)).toEqual(['10.231.0.22']);
    expect(await poolVolumes('ppc64le')).toContain(name);
    expect(await poolVolumes('x86_64')).not.toContain(name);
    expect(await hypervisorExec('ppc64le', ['uname', '-m'])).toBe('ppc64le\n');
    expect(c.logs.some((l) => /skipping hypervisor .*10\.231\.0\.21.*x86_64 guests/.test(l))).toBe(true);
  });

  describe('host keys', () => {
    it('refuses a hypervisor missing from known_hosts, and creates nothing', async () => {
      const name = volName('unknown-key');
      const kh = join(dir, 'known_hosts.other');
      await writeFile(kh, (await readFile(hvs[0]!.knownHosts, 'utf8')).split('\n').filter((l) => !l.startsWith('10.231.0.2')).join('\n'));
      const up = createLibvirtUploader(labTarget({ image_type: 'raw', knownHosts: kh }));
      const pre = await up.preflight(new AbortController().signal).catch((e: unknown) => e);
      expect(pre).toMatchObject({ code: expect.stringMatching(/HOST_KEY|UPLOAD/) });
      expect((pre as Error).message).toMatch(/host key for hypervisor qemu\+ssh:\/\/root@10\.231\.0\.21\/system is not known/);
      const err = await up.upload(await artifactOf(raw256, 'raw'), name, ctx()).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'HOST_KEY' });
      expect(await poolVolumes('x86_64')).not.toContain(name);
    });

    it('ssh itself refuses a different key recorded for the hypervisor (strict checking), and nothing is created', async () => {
      const name = volName('wrong-key');
      const other = join(dir, 'other_key');
      await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', other]);
      const pub = (await readFile(`${other}.pub`, 'utf8')).split(' ').slice(0, 2).join(' ');
      const kh = join(dir, 'known_hosts.wrong');
      await writeFile(kh, `10.231.0.21 ${pub}\n10.231.0.22 ${pub}\n`);
      const err = await createLibvirtUploader(labTarget({ image_type: 'raw', knownHosts: kh }))
        .upload(await artifactOf(raw256, 'raw'), name, ctx())
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(FarmError);
      expect(err).toMatchObject({ code: 'HOST_KEY' });
      expect((err as FarmError).message).toMatch(/hypervisor qemu\+ssh:\/\/root@10\.231\.0\.21\/system failed: .*(REMOTE HOST IDENTIFICATION HAS CHANGED|Host key verification failed)/s);
      expect((err as FarmError).message).not.toMatch(/keyfile|command=/);
      expect(await poolVolumes('x86_64')).not.toContain(name);
    });

    it('the wrapper libvirt runs as ssh refuses an unknown host and does not learn its key', async () => {
      const empty = join(dir, 'known_hosts.empty');
      await writeFile(empty, '');
      const wrapper = join(dir, 'strict-ssh');
      await writeFile(
        wrapper,
        wrapperScript({ ssh: 'ssh', knownHosts: empty, hostKeyAlgorithms: undefined, identityOnly: true, connectTimeoutS: 10, keepaliveS: 15 }),
      );
      await chmod(wrapper, 0o700);
      // The same argv shape libvirt uses (see uri.ts), with a harmless remote command.
      const res = await run(wrapper, ['-l', 'root', '-i', hvs[0]!.identityFile, '-T', '-e', 'none', '--', '10.231.0.21', 'true']).catch((e: unknown) => e);
      expect(res).toMatchObject({ code: 255 });
      expect(String((res as { stderr: string }).stderr)).toMatch(/Host key verification failed/);
      expect(await readFile(empty, 'utf8')).toBe('');
      // With the lab's known_hosts the same command works.
      await writeFile(
        wrapper,
        wrapperScript({ ssh: 'ssh', knownHosts: hvs[0]!.knownHosts, hostKeyAlgorithms: undefined, identityOnly: true, connectTimeoutS: 10, keepaliveS: 15 }),
      );
      const ok = await run(wrapper, ['-l', 'root', '-i', hvs[0]!.identityFile, '-T', '-e', 'none', '--', '10.231.0.21', 'uname', '-m']);
      expect(ok.stdout).toBe('x86_64\n');
    });

    it('accepts a pinned host_key fingerprint and refuses a wrong one', async () => {
      const line = (await readFile(hvs[0]!.knownHosts, 'utf8')).split('\n').find((l) => l.startsWith('10.231.0.21 '))!;
      const pubFile = join(dir, 'hv-x86_64.pub');
      await writeFile(pubFile, `${line.split(' ').slice(1).join(' ')}\n`);
      const { stdout } = await run('ssh-keygen', ['-lf', pubFile]);
      const fp = stdout.split(' ')[1]!;
      const xOnly = (t: LibvirtTarget) => ({ ...t, hypervisors: t.hypervisors.filter((h) => h.arch === 'x86_64') });
      await createLibvirtUploader(xOnly(labTarget({ hostKey: fp }))).preflight(new AbortController().signal);
      const wrong = `SHA256:${randomBytes(32).toString('base64').replace(/=+$/, '')}`;
      const err = await createLibvirtUploader(xOnly(labTarget({ hostKey: wrong }))).preflight(new AbortController().signal).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'HOST_KEY' });
      expect((err as Error).message).toContain(fp);
    });
  });

  describe('failure and cancel leave nothing behind', () => {
    let big: string;
    beforeAll(async () => {
      big = join(dir, 'big.raw');
      await sparseRaw(big, 256 * MiB, 96);
    });

    it('cancelling mid-upload deletes the half-written volume', async () => {
      const name = volName('abort');
      const ac = new AbortController();
      const seen: UploadProgress[] = [];
      const c = ctx({
        signal: ac.signal,
        onProgress: (p) => {
          seen.push(p);
          // Mid-upload as /proc shows it: part of the file read and bytes handed to ssh (a hole
          // skipped moves the offset before anything is written).
          if (p.phase === 'upload' && p.done > 0 && (p.sent ?? 0) > 0 && p.done < p.total) ac.abort();
        },
      });
      const root = await mkdtemp(join(tmpdir(), 'lv-'));
      const err = await createLibvirtUploader(labTarget({ image_type: 'raw' }), { sampleMs: 20, tmpRoot: root })
        .upload(await artifactOf(big, 'raw'), name, c)
        .catch((e: unknown) => e);
      // The shared SSH connection ended with the cancelled upload.
      expect(await leftUnder(root)).toEqual({ files: [], procs: [] });
      await rm(root, { recursive: true, force: true });
      expect(ac.signal.aborted).toBe(true);
      // Progress came from the running virsh: part of the file read, bytes handed to ssh.
      const mid = seen.find((p) => p.phase === 'upload' && p.done > 0 && (p.sent ?? 0) > 0 && p.done < p.total)!;
      expect(mid).toBeDefined();
      expect(mid.sent).toBeLessThan(mid.total);
      expect(err).toMatchObject({ code: 'ABORTED' });
      expect(await poolVolumes('x86_64')).not.toContain(name);
      expect(c.logs.some((l) => l.includes('removed the incomplete volume'))).toBe(true);
    });

    it('removeHalfMade deletes a volume a killed run left, keeps a complete one, and finds a removed one gone', async () => {
      const name = volName('killed');
      const up = createLibvirtUploader(labTarget({ image_type: 'raw' }));
      // A finished upload's journal records, then the same volume as a killed run leaves it: created, never written.
      const journal = new TestJournal();
      await up.upload(await artifactOf(big, 'raw'), name, ctx({ journal }));
      expect(journal.records.map((r) => [r.kind, r.location, r.name])).toEqual([['libvirt-volume', '10.231.0.21', name]]);
      expect(await up.removeHalfMade!(journal.records, AbortSignal.timeout(60_000))).toEqual([{ object: journal.records[0], outcome: 'complete' }]);
      expect(await poolVolumes('x86_64')).toContain(name);

      await hypervisorExec('x86_64', ['virsh', '-q', '-c', 'qemu:///system', 'vol-delete', '--pool', 'images', name]);
      await hypervisorExec('x86_64', ['virsh', '-q', '-c', 'qemu:///system', 'vol-create-as', 'images', name, '0', '--format', 'raw']);
      expect(await up.removeHalfMade!(journal.records, AbortSignal.timeout(60_000))).toEqual([{ object: journal.records[0], outcome: 'removed' }]);
      expect(await poolVolumes('x86_64')).not.toContain(name);
      expect(await up.removeHalfMade!(journal.records, AbortSignal.timeout(60_000))).toEqual([{ object: journal.records[0], outcome: 'gone' }]);
    });

    it('a connection dropped mid-upload fails with the hypervisor named and deletes the volume', async () => {
      const name = volName('drop');
      // virsh as the user has it, except that 0.3 s into vol-upload its connection is lost (its
      // process group is killed, as a dropped link or a crashed client would end it). The farm
      // drives one virsh per hypervisor through its shell, so the shim watches the command lines.
      const shim = join(dir, 'virsh-drop');
      await writeFile(
        shim,
        [
          '#!/usr/bin/env python3',
          'import os, signal, subprocess, sys, time',
          "p = subprocess.Popen(['virsh', *sys.argv[1:]], stdin=subprocess.PIPE, start_new_session=True)",
          'for line in sys.stdin.buffer:',
          '    p.stdin.write(line); p.stdin.flush()',
          "    if b'vol-upload' in line:",
          '        time.sleep(0.3); os.killpg(p.pid, signal.SIGKILL); p.wait(); sys.exit(1)',
          'p.stdin.close()',
          'sys.exit(p.wait())',
          '',
        ].join('\n'),
      );
      await chmod(shim, 0o755);
      const root = await mkdtemp(join(tmpdir(), 'lv-'));
      const opts: LibvirtUploaderOptions = { virsh: shim, tmpRoot: root };
      const err = await createLibvirtUploader(labTarget({ image_type: 'raw' }), opts)
        .upload(await artifactOf(big, 'raw'), name, ctx())
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(FarmError);
      expect(err).toMatchObject({ code: 'UPLOAD' });
      expect((err as Error).message).toMatch(/hypervisor qemu\+ssh:\/\/root@10\.231\.0\.21\/system/);
      expect(await poolVolumes('x86_64')).not.toContain(name);
      // The killed virsh's master (its own session, out of reach of the group kill) ended too.
      expect(await leftUnder(root)).toEqual({ files: [], procs: [] });
      await rm(root, { recursive: true, force: true });
    });
  });
});
