// The check's cloud-init NoCloud seed, made on the worker: a fresh ed25519 key pair for the check
// (its public half in ssh_authorized_keys) and one for the guest's host key (ssh_keys), so the
// host key is known before the guest boots and SSH pins it. A small FAT filesystem labelled
// CIDATA, written with mkfs.vfat and mtools (no mount). The private keys never leave the worker's
// temporary directory except the guest's, which goes into the seed.

import { posix } from 'node:path';
import type { Arch } from '../../src/core/arch.ts';
import type { WorkerTransport } from '../transport.ts';

const SEED_KIB = 1024;

/** The user-data text: one authorized key, one ed25519 host key pair (OpenSSH formats). */
export function userData({ authorizedKey, hostPrivateKey, hostPublicKey }: { authorizedKey: string; hostPrivateKey: string; hostPublicKey: string }): string {
  const block = hostPrivateKey.trimEnd().split('\n').map((l) => `    ${l}`).join('\n');
  return ['#cloud-config', 'ssh_authorized_keys:', `  - ${authorizedKey.trim()}`, 'ssh_keys:', '  ed25519_private: |', block, `  ed25519_public: ${hostPublicKey.trim()}`, ''].join('\n');
}

export function metaData(instanceId: string, hostname: string): string {
  return `instance-id: ${instanceId}\nlocal-hostname: ${hostname}\n`;
}

export interface SeedFiles {
  seed: string;
  /** The check's private key on the worker. */
  client: string;
  knownHosts: string;
  /** The guest's host key, "ssh-ed25519 AAAA..." */
  hostPublic: string;
}

export async function makeSeed(t: WorkerTransport, { dir, arch, signal }: { dir: string; arch: Arch; signal: AbortSignal }): Promise<SeedFiles> {
  const p = (n: string) => posix.join(dir, n);
  const write = (path: string, text: string) => t.exec(['sh', '-c', 'umask 077; cat > "$1"', 'sh', path], { signal, stdin: text });
  for (const k of ['client', 'host']) {
    await t.exec(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', `farm-smoke-${k}`, '-f', p(k)], { signal });
  }
  const read = async (n: string) => (await t.exec(['cat', '--', p(n)], { signal })).stdout;
  const clientPublic = (await read('client.pub')).trim();
  const hostPublic = (await read('host.pub')).trim().split(' ').slice(0, 2).join(' ');
  await write(p('user-data'), userData({ authorizedKey: clientPublic, hostPrivateKey: await read('host'), hostPublicKey: hostPublic }));
  await write(p('meta-data'), metaData(`farm-smoke-${posix.basename(dir)}`, `farm-smoke-${arch}`));
  await t.exec(['mkfs.vfat', '-C', '-n', 'CIDATA', p('seed.img'), String(SEED_KIB)], { signal });
  await t.exec(['env', 'MTOOLS_SKIP_CHECK=1', 'mcopy', '-i', p('seed.img'), p('user-data'), p('meta-data'), '::/'], { signal });
  return { seed: p('seed.img'), client: p('client'), knownHosts: p('known_hosts'), hostPublic };
}
