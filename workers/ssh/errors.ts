// How SSH failures read: a host key refused (what was presented, what was expected and where,
// and the fix), a connection that could not be made (ssh2's error levels mapped to what the user
// can check), and one that was lost (how long it lived, and why).

import { FarmError } from '../../src/core/errors.ts';
import { describeHost, knownHostsName, type HostKeyCheck, type HostKeyPolicy, type SshHost } from '../../src/core/hostkeys.ts';
import type { WorkerEndpoint as Worker } from '../endpoint.ts';
import { describeAuth, type Auth } from './auth.ts';

// Keepalives unanswered before ssh2 drops the connection (OpenSSH's ServerAliveCountMax likewise).
export const KEEPALIVE_COUNT_MAX = 4;

export function who(worker: Pick<Worker, 'name' | 'host' | 'port'>): string {
  return `${worker.name} (${worker.host}:${worker.port})`;
}

/** Shortens a command line for messages. */
export function shown(cmd: string): string {
  return cmd.length > 300 ? `${cmd.slice(0, 300)}...` : cmd;
}

/** 192 → "3m12s", for how long a connection lived. */
export function shortDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** Why a connection the farm did not close ended, as the user should read it. */
export function lostConnectionError(
  worker: Pick<Worker, 'name' | 'host'>,
  livedMs: number,
  cause: { keepalive: true; intervalMs: number } | { keepalive: false; message: string },
): FarmError {
  const why = cause.keepalive
    ? `no keepalive answer for ${Math.round((cause.intervalMs * KEEPALIVE_COUNT_MAX) / 1000)} s`
    : cause.message;
  return new FarmError('SSH', `lost the SSH connection to ${worker.name} (${worker.host}) after ${shortDuration(livedMs)}: ${why}`, {
    hint: `check the network to ${worker.host} and that the worker is up, then run the build again (settings.keepalive_s sets how fast a dead link is noticed)`,
  });
}

/** Maps an ssh2 connection error to a FarmError naming the worker, the address and the cause. */
export function connectError(worker: Worker, auth: Auth, err: Error & { level?: string; code?: string }, timeoutMs: number): FarmError {
  const base = `cannot connect to worker ${who(worker)}`;
  switch (err.level) {
    case 'client-authentication':
      return new FarmError('SSH', `${base}: authentication as ${worker.user} refused with ${describeAuth(auth)}`, {
        hint: `add the public key to ~${worker.user}/.ssh/authorized_keys on ${worker.host}, or set identity_file for ${worker.name} to the right key`,
        cause: err,
      });
    case 'client-timeout':
      return new FarmError('SSH', `${base}: timed out after ${Math.round(timeoutMs / 1000)} s (${err.message})`, {
        hint: 'check that the host is up and reachable and that sshd listens on that port',
        cause: err,
      });
    case 'client-socket':
      return new FarmError('SSH', `${base}: ${err.code ? `${err.code} ` : ''}${err.message}`, {
        hint: 'check host and port in the inventory and that sshd runs on the worker',
        cause: err,
      });
    default:
      return new FarmError('SSH', `${base}: ${err.message}`, { cause: err });
  }
}

/** The FarmError for a refused key; `undefined` for an accepted one. */
export function hostKeyError(
  worker: SshHost,
  policy: HostKeyPolicy,
  check: HostKeyCheck,
  /** What the farm does instead: the default ends a connection; `farm workers trust` refuses. */
  refusal = 'Not connecting.',
): FarmError | undefined {
  const who = describeHost(worker);
  const { keyType, fingerprint: seen } = check.presented;
  switch (check.status) {
    case 'ok':
      return undefined;
    case 'unknown': {
      const where = policy.kind === 'known_hosts' ? ` (no entry for ${knownHostsName(worker.host, worker.port)} in ${policy.file})` : '';
      return new FarmError('HOST_KEY', `host key for ${who} is not known${where}; it presented ${keyType} ${seen}`, {
        hint: `verify the fingerprint out of band, then run \`farm workers trust ${worker.name}\``,
      });
    }
    case 'revoked':
      return new FarmError(
        'HOST_KEY',
        `host key for ${who} is REVOKED: it presented ${keyType} ${seen}, marked @revoked in ${check.entry.file} line ${check.entry.line}`,
        { hint: 'do not connect to this host until its keys are replaced' },
      );
    case 'changed': {
      const expected = check.expected
        .map((e) => `${e.keyType ? `${e.keyType} ` : ''}${e.fingerprint} (${e.source})`)
        .join(', ');
      const hint =
        policy.kind === 'pinned'
          ? `if the change is expected (host reinstalled), verify the new fingerprint out of band and update host_key for ${worker.name} in the inventory`
          : `if the change is expected (host reinstalled), verify the new fingerprint out of band, remove the stale line (ssh-keygen -R '${knownHostsName(worker.host, worker.port)}' -f ${policy.file}) and run \`farm workers trust ${worker.name}\` again; otherwise do not connect`;
      return new FarmError(
        'HOST_KEY',
        `HOST KEY CHANGED for ${who}: it presented ${keyType} ${seen}, but expected ${expected}. ` +
          `Someone could be intercepting the connection, or the host was reinstalled. ${refusal}`,
        { hint },
      );
    }
  }
}
