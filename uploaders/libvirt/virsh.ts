// Runs virsh against one hypervisor: argv only (no shell), its own process group so that
// cancelling ends virsh and the ssh it spawned together, output capped, errors classified.

import { spawn } from 'node:child_process';
import { FarmError, type ErrorCode } from '../../src/core/errors.ts';

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

/** Starts `virsh -q -c URI ARGS...`. Resolves `done` on exit; never rejects for a non-zero exit. */
export function startVirsh(uri: string, args: readonly string[], opts: VirshOptions = {}): VirshRun {
  const child = spawn(opts.virsh ?? 'virsh', ['-q', '-c', uri, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true, // its own process group: kill(-pid) reaches the ssh child too
    // C locale: virsh's messages are matched below. Keepalive: libvirt's own RPC keepalive
    // (virsh defaults: every 5 s, 6 misses) also ends a dead connection.
    env: { ...process.env, LC_ALL: 'C', LANG: 'C' },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => {
    if (stdout.length < MAX_OUTPUT) stdout += d.toString();
  });
  child.stderr.on('data', (d: Buffer) => {
    if (stderr.length < MAX_OUTPUT) stderr += d.toString();
  });
  const kill = () => {
    if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
    try {
      process.kill(-child.pid, 'SIGTERM');
    } catch {
      child.kill('SIGTERM');
    }
  };
  const timer = opts.timeoutMs === undefined ? undefined : setTimeout(() => {
    stderr += `\nfarm: virsh timed out after ${Math.round(opts.timeoutMs! / 1000)} s`;
    kill();
  }, opts.timeoutMs);
  opts.signal?.addEventListener('abort', kill, { once: true });
  const done = new Promise<VirshResult>((resolve, reject) => {
    child.on('error', (err: NodeJS.ErrnoException) => {
      if (timer) clearTimeout(timer);
      opts.signal?.removeEventListener('abort', kill);
      reject(
        err.code === 'ENOENT'
          ? new FarmError('UPLOAD', `${opts.virsh ?? 'virsh'} is not installed`, { hint: 'install libvirt-clients (Debian/Ubuntu) or libvirt-client (Fedora)' })
          : err,
      );
    });
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      opts.signal?.removeEventListener('abort', kill);
      resolve({ code, signal, stdout, stderr });
    });
  });
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
