// What virsh answers, and how its errors read: the result of one command (virsh-session.ts runs
// them), its environment, and the classification of its failures.

import type { ErrorCode } from '../../src/core/errors.ts';

export interface VirshResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

// virsh runs ssh (qemu+ssh://), which may authenticate with the agent; libvirt's client reads its
// default URI and its config (URI aliases) from these. Nothing else of the farm's environment.
export const VIRSH_PASS = ['SSH_AUTH_SOCK', 'LIBVIRT_DEFAULT_URI', 'XDG_CONFIG_HOME', 'XDG_RUNTIME_DIR'];

/** virsh's error lines without its "error: " prefixes, one line. */
export function virshError(stderr: string): string {
  const lines = stderr
    .split('\n')
    .map((l) => l.replace(/^error: /, '').trim())
    .filter((l) => l !== '' && !/^failed to connect to the hypervisor$/.test(l));
  return lines.join('; ') || 'virsh failed without a message';
}

export function isNotFound(stderr: string, what: 'volume' | 'pool'): boolean {
  return what === 'volume' ? /Storage volume not found/.test(stderr) : /Storage pool not found/.test(stderr);
}

/** The error code for a failed virsh: host key trouble and SSH login are told apart. */
export function classify(stderr: string): { code: ErrorCode; hint?: string } {
  if (/Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED|host key is known for .* requested strict checking|No \S+ host key is known/i.test(stderr)) {
    return {
      code: 'HOST_KEY',
      hint: "the hypervisor's SSH host key is unknown or changed: verify it out of band and fix known_hosts (or host_key) for this hypervisor",
    };
  }
  if (/Permission denied \(|Too many authentication failures/.test(stderr)) {
    return { code: 'SSH', hint: 'SSH key authentication was refused: check identity_file and the user in the URI (root, or a user in the libvirt group)' };
  }
  if (/Connection refused|Connection timed out|No route to host|Could not resolve hostname|Network is unreachable|Connection closed by/.test(stderr)) {
    return { code: 'SSH', hint: 'the hypervisor is not reachable over SSH: check the host and port in the URI' };
  }
  if (/virsh is not installed/.test(stderr)) return { code: 'UPLOAD', hint: 'install libvirt-clients (Debian/Ubuntu) or libvirt-client (Fedora)' };
  if (/virt-ssh-helper|libvirt-sock|Failed to connect socket/.test(stderr)) {
    return { code: 'UPLOAD', hint: 'libvirtd does not answer on the hypervisor: start it (systemctl start libvirtd or virtqemud)' };
  }
  return { code: 'UPLOAD' };
}
