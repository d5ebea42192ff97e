// The lab's libvirt hypervisor hosts for integration tests and the benchmark: brought up once per
// process (idempotent `scripts/lab.d/services/libvirt.sh up`), then reused.

import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { REPO } from './cli.ts';

const run = promisify(execFile);

export const LIBVIRT_SCRIPT = join(REPO, 'scripts', 'lab.d', 'services', 'libvirt.sh');
export const LAB_DIR = process.env.FARM_LAB_DIR ?? join(REPO, '.lab');
export const LAB_IDENTITY = join(LAB_DIR, 'ssh', 'id_ed25519');
export const LAB_KNOWN_HOSTS = join(LAB_DIR, 'ssh', 'known_hosts');

/** The lab's hypervisors: arch → address (libvirt.sh's default host list). */
export const HYPERVISOR_ADDRS = { x86_64: '10.231.0.21', ppc64le: '10.231.0.22' } as const;
export type HypervisorArch = keyof typeof HYPERVISOR_ADDRS;

export interface LabHypervisor {
  uri: string;
  arch: string;
  identityFile: string;
  knownHosts: string;
}

let up: Promise<LabHypervisor[]> | undefined;

/** Starts (or finds running) the lab hypervisors; same list on every call. */
export function ensureHypervisors(): Promise<LabHypervisor[]> {
  up ??= run(LIBVIRT_SCRIPT, ['up'], { maxBuffer: 16 << 20, timeout: 300_000 }).then(() =>
    Object.entries(HYPERVISOR_ADDRS).map(([arch, addr]) => ({
      uri: `qemu+ssh://root@${addr}/system`,
      arch,
      identityFile: LAB_IDENTITY,
      knownHosts: LAB_KNOWN_HOSTS,
    })),
  );
  up.catch(() => (up = undefined));
  return up;
}

/** The hypervisor's state directory (its pool is `pool/images` in it). */
export function hypervisorDir(arch: HypervisorArch): string {
  return join(LAB_DIR, `hv-${arch}`);
}

/** The file behind a volume of the `images` pool, read from outside the namespace. */
export function poolFile(arch: HypervisorArch, volume: string): string {
  return join(hypervisorDir(arch), 'pool', 'images', volume);
}

/** Runs a command inside the hypervisor's network and mount namespaces (as its sshd sees them). */
export async function hypervisorExec(arch: HypervisorArch, argv: string[]): Promise<string> {
  const pid = (await readFile(join(hypervisorDir(arch), 'run', 'libvirtd.pid'), 'utf8')).trim();
  const { stdout } = await run('nsenter', ['--target', pid, '--mount', '--net', '--', ...argv], { maxBuffer: 64 << 20 });
  return stdout;
}

/** Bytes received on the hypervisor's own interface (eth0 inside its namespace). */
export async function hypervisorRxBytes(arch: HypervisorArch): Promise<number> {
  return Number((await hypervisorExec(arch, ['cat', '/sys/class/net/eth0/statistics/rx_bytes'])).trim());
}

/** Volume names in the hypervisor's `images` pool, via its own libvirtd (not through the uploader). */
export async function poolVolumes(arch: HypervisorArch): Promise<string[]> {
  const out = await hypervisorExec(arch, ['virsh', '-q', '-c', 'qemu:///system', 'vol-list', '--pool', 'images']);
  return out
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0] ?? '')
    .filter((n) => n !== '');
}

/** Deletes a volume through the hypervisor's own libvirtd, if it exists (test cleanup). */
export async function removeVolume(arch: HypervisorArch, volume: string): Promise<void> {
  if (!(await poolVolumes(arch)).includes(volume)) return;
  await hypervisorExec(arch, ['virsh', '-q', '-c', 'qemu:///system', 'vol-delete', '--pool', 'images', '--vol', volume]);
}
