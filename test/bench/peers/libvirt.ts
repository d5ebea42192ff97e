// libvirt: the farm's libvirt uploader (look the volume up, create it, `vol-upload --sparse`,
// check it) against `virsh vol-upload --sparse` alone into a volume made beforehand (untimed, as
// the farm makes it: capacity 0, raw), both over qemu+ssh to the lab's x86_64 hypervisor. Both
// send only the data. With `withCreate` the peer also makes the volume over the link, timed:
// `virsh vol-create-as` then `virsh vol-upload --sparse`, as users run it by hand. The peer's ssh gets the lab's known_hosts through a two-line `command=`
// wrapper, the only way libvirt's ssh transport takes ssh options; OpenSSH's defaults otherwise.
// Each volume is checked (full size, sparse) and deleted after its turn, untimed.

import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { libvirtTargetSchema } from '../../../uploaders/libvirt/schema.ts';
import { createLibvirtUploader } from '../../../uploaders/libvirt/index.ts';
import type { BenchDisk } from '../../support/bench-disk.ts';
import { allocatedBytes } from '../../support/disk.ts';
import { startupSeconds, type Contender } from '../../support/bench-pair.ts';
import { ensureHypervisors, hypervisorExec, poolFile, removeVolume } from '../../support/libvirt.ts';
import { benchArtifact } from './artifact.ts';
import type { PeerSetup } from './peer.ts';

const run = promisify(execFile);
const POOL = 'images';

export async function libvirtPeer(disk: BenchDisk, opts: { withCreate?: boolean } = {}): Promise<PeerSetup> {
  const hv = (await ensureHypervisors()).find((h) => h.arch === 'x86_64')!;
  const dir = await mkdtemp(join(tmpdir(), 'farm-bench-virsh-'));
  const wrapper = join(dir, 'ssh');
  await writeFile(
    wrapper,
    `#!/bin/sh\nexec ssh -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=${hv.knownHosts} "$@"\n`,
    { mode: 0o700 },
  );
  const uri = `${hv.uri}?keyfile=${encodeURIComponent(hv.identityFile)}&command=${encodeURIComponent(wrapper)}&no_tty=1`;
  const env = { ...process.env, LC_ALL: 'C' };
  const version = (await run('virsh', ['--version'])).stdout.trim();
  const prefix = `farm-bench-${randomBytes(3).toString('hex')}`;
  const names = new Map<number, string>();

  const checkAndDelete = async (turn: number) => {
    const name = names.get(turn)!;
    try {
      const file = poolFile('x86_64', name);
      const size = (await stat(file)).size;
      const allocated = await allocatedBytes(file);
      if (size !== disk.apparent) throw new Error(`volume ${name} is ${size} bytes, expected ${disk.apparent}`);
      // A dense copy would allocate the whole apparent size; allow filesystem rounding.
      if (allocated > disk.data * 1.05) throw new Error(`volume ${name} allocates ${allocated} bytes for ${disk.data} of data: not sparse`);
    } finally {
      await removeVolume('x86_64', name);
    }
  };

  const target = libvirtTargetSchema.parse({
    kind: 'libvirt',
    image_type: 'raw',
    hypervisors: [{ uri: hv.uri, arch: 'x86_64', identity_file: hv.identityFile, known_hosts: hv.knownHosts }],
  });
  const uploader = createLibvirtUploader(target);
  const farm: Contender = {
    label: 'farm libvirt uploader',
    before: async (turn) => void names.set(turn, `${prefix}-farm-${turn}`),
    async run(turn) {
      const name = names.get(turn)!;
      await uploader.upload(benchArtifact(disk, name), name, { signal: AbortSignal.timeout(20 * 60_000), log: () => {}, tags: {} });
    },
    after: checkAndDelete,
  };
  const createArgs = (name: string) => ['vol-create-as', POOL, name, '0', '--allocation', '0', '--format', 'raw'];
  const peer: Contender = {
    label: opts.withCreate ? `virsh vol-create-as + vol-upload --sparse (${version})` : `virsh vol-upload --sparse (${version})`,
    async before(turn) {
      const name = `${prefix}-virsh-${turn}`;
      names.set(turn, name);
      // Through the hypervisor's own libvirtd, not the link: only the upload is timed.
      if (!opts.withCreate) await hypervisorExec('x86_64', ['virsh', '-q', '-c', 'qemu:///system', ...createArgs(name)]);
    },
    async run(turn) {
      const name = names.get(turn)!;
      if (opts.withCreate) await run('virsh', ['-q', '-c', uri, ...createArgs(name)], { env });
      await run('virsh', ['-q', '-c', uri, 'vol-upload', '--sparse', '--pool', POOL, '--vol', name, '--file', disk.path], { env });
    },
    after: checkAndDelete,
  };
  return {
    bench: opts.withCreate ? 'libvirt volume create + upload' : 'libvirt volume upload',
    farm,
    peer,
    farmSends: disk.data,
    peerSends: disk.data,
    // One virsh connection over qemu+ssh that does nothing: what every virsh call costs first.
    peerStartup: await startupSeconds('virsh', ['-q', '-c', uri, 'pool-info', POOL], env),
    note: opts.withCreate
      ? 'context for the row above: the peer makes the volume over the link too (two virsh connections); the farm makes one (a virsh session, AES-GCM preferred)'
      : 'peer start-up is one virsh connection over qemu+ssh doing `pool-info`; the peer is handed an existing volume, the farm looks it up, creates it, uploads and checks it, all through one virsh session (one connection)',
    close: () => rm(dir, { recursive: true, force: true }),
  };
}
