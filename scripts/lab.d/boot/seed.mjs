// A cloud-init NoCloud seed: a small FAT filesystem labelled CIDATA holding meta-data and a
// #cloud-config user-data with the check's SSH key (ssh_authorized_keys) and the guest's SSH host
// key (ssh_keys), so the host key is known before the guest boots and can be pinned.
// Made with mkfs.vfat and mtools, no mount.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run } from './run.mjs';

const SEED_KIB = 1024;

/** The user-data text: one authorized key, one ed25519 host key pair (OpenSSH formats). */
export function userData({ authorizedKey, hostPrivateKey, hostPublicKey }) {
  const block = hostPrivateKey.trimEnd().split('\n').map((l) => `    ${l}`).join('\n');
  return [
    '#cloud-config',
    'ssh_authorized_keys:',
    `  - ${authorizedKey.trim()}`,
    'ssh_keys:',
    '  ed25519_private: |',
    block,
    `  ed25519_public: ${hostPublicKey.trim()}`,
    '',
  ].join('\n');
}

export function metaData({ instanceId, hostname }) {
  return `instance-id: ${instanceId}\nlocal-hostname: ${hostname}\n`;
}

/** Writes the seed image at `path` (work files go in `dir`). */
export async function makeSeed({ path, dir, userData: ud, metaData: md }) {
  writeFileSync(join(dir, 'user-data'), ud, { mode: 0o600 });
  writeFileSync(join(dir, 'meta-data'), md);
  await run('mkfs.vfat', ['-C', '-n', 'CIDATA', path, String(SEED_KIB)]);
  const env = { MTOOLS_SKIP_CHECK: '1' };
  await run('mcopy', ['-i', path, join(dir, 'user-data'), join(dir, 'meta-data'), '::/'], { env });
}
