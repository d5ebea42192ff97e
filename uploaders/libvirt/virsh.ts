// Runs virsh against one hypervisor: argv only (no shell), its own process group so that
// cancelling ends virsh and the ssh it spawned together, output capped, errors classified.
// It runs through src/core/process.ts (zx, minimal environment).

import { FarmError, type ErrorCode } from '../../src/core/errors.ts';
import { start } from '../../src/core/process.ts';

export interface VirshResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface VirshRun {
  pid: number;
  done: Promise<VirshResult>;
}

export interface VirshOptions {
  virsh?: string;
  signal?: AbortSignal;
  /** Kills virsh after this long (small commands); uploads pass none and rely on keepalives. */
  timeoutMs?: number;
}

const MAX_OUTPUT = 1 << 20;
// virsh runs ssh (qemu+ssh://), which may authenticate with the agent; libvirt's client reads its
// default URI and its config (URI aliases) from these. Nothing else of the farm's environment.
const VIRSH_PASS = ['SSH_AUTH_SOCK', 'LIBVIRT_DEFAULT_URI', 'XDG_CONFIG_HOME', 'XDG_RUNTIME_DIR'];

/** Starts `virsh -q -c URI ARGS...`. Resolves `done` on exit; never rejects for a non-zero exit. */
export function startVirsh(uri: string, args: readonly string[], opts: VirshOptions = {}): VirshRun {
  const virsh = opts.virsh ?? 'virsh';
  // C locale: virsh's messages are matched below. Keepalive: libvirt's own RPC keepalive
  // (virsh defaults: every 5 s, 6 misses) also ends a dead connection. The runner gives virsh its
  // own process group, so ending it ends the ssh it spawned too.
  const child = start([virsh, '-q', '-c', uri, ...args], {
    pass: VIRSH_PASS,
    env: { LC_ALL: 'C', LANG: 'C' },
    ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}),
    code: 'UPLOAD',
    hint: 'install libvirt-clients (Debian/Ubuntu) or libvirt-client (Fedora)',
  });
  // An abort ends virsh; `done` still resolves with how it ended, as for any exit.
  const kill = () => child.kill();
  opts.signal?.addEventListener('abort', kill, { once: true });
  if (opts.signal?.aborted) kill();
  const done = child.done.then(
    (r) => {
      opts.signal?.removeEventListener('abort', kill);
      const stderr = r.stderr.slice(0, MAX_OUTPUT) + (r.timedOut ? `\nfarm: virsh timed out after ${Math.round(opts.timeoutMs! / 1000)} s` : '');
      return { code: r.code, signal: r.signal, stdout: r.stdout.slice(0, MAX_OUTPUT), stderr };
    },
    (err: unknown) => {
      opts.signal?.removeEventListener('abort', kill);
      throw err instanceof FarmError && /is not installed/.test(err.message) ? new FarmError('UPLOAD', `${virsh} is not installed`, { hint: err.hint ?? '' }) : err;
    },
  );
  // A pid is there unless spawn failed, which `done` reports.
  return { pid: child.pid ?? -1, done };
}

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
  if (/virt-ssh-helper|libvirt-sock|Failed to connect socket/.test(stderr)) {
    return { code: 'UPLOAD', hint: 'libvirtd does not answer on the hypervisor: start it (systemctl start libvirtd or virtqemud)' };
  }
  return { code: 'UPLOAD' };
}
