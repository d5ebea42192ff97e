// cloud-init user-data for a VM the farm makes: its SSH host key (so the farm can pin it: no trust
// on first use), the client key it accepts, and a dead-man switch (the VM powers off, and so ends
// itself with InstanceInitiatedShutdownBehavior=terminate, at the pool's lifetime even if the
// coordinator died). Holds a private key: never log it.

import { stringify } from 'yaml';

export interface UserDataInput {
  hostPrivateKey: string;
  hostPublicKey: string;
  authorizedKey: string;
  /** Seconds the VM may live; the power-off timer is set at this, rounded up to minutes. */
  lifetimeSeconds: number;
  user: string;
}

export function cloudInitUserData(u: UserDataInput): string {
  const minutes = Math.max(1, Math.ceil(u.lifetimeSeconds / 60));
  const doc: Record<string, unknown> = {
    // Only the injected key: no generated ones the farm could not pin.
    ssh_deletekeys: true,
    ssh_genkeytypes: [],
    ssh_keys: { ed25519_private: u.hostPrivateKey.endsWith('\n') ? u.hostPrivateKey : `${u.hostPrivateKey}\n`, ed25519_public: u.hostPublicKey.trim() },
    ssh_authorized_keys: [u.authorizedKey.trim()],
    ...(u.user === 'root' ? { disable_root: false } : {}),
    // bootcmd runs on every boot, so a rebooted VM keeps its deadline counted from that boot.
    bootcmd: [['shutdown', '-P', `+${minutes}`, 'farm pool lifetime reached']],
  };
  return `#cloud-config\n${stringify(doc, { lineWidth: 0 })}`;
}
