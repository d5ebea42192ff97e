// The ssh that libvirt's qemu+ssh transport runs (URI `command=`): a two-line sh script, written
// per connection into a private temp directory, that execs OpenSSH with host key checking forced
// on and pointed at the hypervisor's known_hosts. Options given first on ssh's command line win
// over any ssh_config, so a `StrictHostKeyChecking no` there cannot weaken it, and libvirt's own
// arguments (-l, -p, -i, host, remote command) follow unchanged through "$@".
//
// A pinned `host_key` (SHA256 fingerprint) becomes a one-line known_hosts file: the hypervisor's
// key of that fingerprint is found the way a worker's is (src/core/hostkeys.ts findPinnedKey:
// each key type asked for once, without authenticating), checked against the pin, and ssh is then limited to that key type and verifies it strictly again, so a
// different key (a man in the middle between the scan and the connection) is still refused.
//
// Connection sharing: every virsh call is a new qemu+ssh connection (~0.4 s of SSH set-up each,
// and an upload makes four or five). The wrapper makes the first ssh a ControlMaster whose socket
// lives in the wrapper's private 0700 directory, so later calls reuse its verified connection.
// The master is the one that authenticates and checks the host key, with the options above.
// ControlPersist is short, so even a farm killed with SIGKILL leaves it for seconds only; dispose()
// ends it with `ssh -O exit` before the directory (and its socket) goes.

import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FarmError } from '../../src/core/errors.ts';
import { findPinnedKey, knownHostsName, lookupKnownHosts } from '../../src/core/hostkeys.ts';
import { start } from '../../src/core/process.ts';
import { quote } from '../../src/core/quote.ts';
import { OPENSSH_CIPHERS } from '../../src/core/ssh-ciphers.ts';
import { displayUri, sshEndpoint, sshPathLiteral, userSshCommand } from './uri.ts';

export interface HypervisorSsh {
  uri: string;
  identity_file?: string | undefined;
  known_hosts?: string | undefined;
  host_key?: string | undefined;
}

export interface WrapperOptions {
  /** ssh binary (default `ssh` from PATH, or the URI's own command=). */
  ssh?: string;
  connectTimeoutS?: number;
  /** ServerAliveInterval: a dead link fails the transfer instead of hanging it. */
  keepaliveS?: number;
  tmpRoot?: string;
}

export interface SshWrapper {
  /** Path of the executable for `command=`. */
  command: string;
  dispose(): Promise<void>;
}

/** Fails with an error that names the path when ssh could not take it as one option value. */
function sshOptionPath(what: string, path: string): string {
  // ssh splits option values on whitespace and reads quotes and backslashes: the value goes in
  // double quotes, so only `"`, `\` and control characters cannot be expressed.
  if (/["\\\x00-\x1f]/.test(path)) {
    throw new FarmError('INVENTORY', `${what} path ${JSON.stringify(path)} contains a quote, backslash or control character`, {
      hint: 'move the file to a plain path',
    });
  }
  return `"${sshPathLiteral(path)}"`;
}

export interface WrapperSpec {
  ssh: string;
  /** known_hosts file to verify against; undefined keeps ssh's defaults (~/.ssh/known_hosts). */
  knownHosts: string | undefined;
  /** Host key algorithms to allow (a pinned key's type). */
  hostKeyAlgorithms: string[] | undefined;
  identityOnly: boolean;
  connectTimeoutS: number;
  keepaliveS: number;
  /** ControlPath (with ssh's %C) for connection sharing; undefined: every call connects anew. */
  controlPath?: string | undefined;
}

/** Seconds an idle master stays: covers the gaps between one upload's virsh calls, no more. */
export const CONTROL_PERSIST_S = 10;
/** Name prefix of the master's socket in the wrapper directory. */
const CONTROL_PREFIX = 'cm-';
// sun_path is 104 bytes on BSD/macOS (108 on Linux). %C is 40 hex digits, and while the master
// sets up it binds a temporary name with a 17-character suffix.
const SOCKET_PATH_MAX = 103;

/** The wrapper script's text. Every word is shell-quoted; nothing from the inventory is evaluated. */
export function wrapperScript(spec: WrapperSpec): string {
  const argv = [
    spec.ssh,
    '-o', 'BatchMode=yes',
    '-o', 'StrictHostKeyChecking=yes',
    '-o', 'UpdateHostKeys=no',
    '-o', 'VerifyHostKeyDNS=no',
    '-o', `ConnectTimeout=${Math.max(1, Math.round(spec.connectTimeoutS))}`,
    '-o', `ServerAliveInterval=${Math.max(1, Math.round(spec.keepaliveS))}`,
    '-o', 'ServerAliveCountMax=4',
    '-o', `Ciphers=${OPENSSH_CIPHERS}`,
  ];
  if (spec.knownHosts !== undefined) {
    argv.push('-o', `UserKnownHostsFile=${sshOptionPath('known_hosts', spec.knownHosts)}`, '-o', 'GlobalKnownHostsFile=/dev/null');
  }
  if (spec.hostKeyAlgorithms?.length) argv.push('-o', `HostKeyAlgorithms=${spec.hostKeyAlgorithms.join(',')}`);
  if (spec.identityOnly) argv.push('-o', 'IdentitiesOnly=yes');
  if (spec.controlPath !== undefined) {
    argv.push('-o', 'ControlMaster=auto', '-o', `ControlPath="${spec.controlPath}"`, '-o', `ControlPersist=${CONTROL_PERSIST_S}`);
  }
  return [
    '#!/bin/sh',
    '# Written by farm for libvirt (URI command=): SSH with host key verification forced on.',
    `exec ${argv.map(quote).join(' ')} "$@"`,
    '',
  ].join('\n');
}

/** Finds the hypervisor's key with the pinned fingerprint, trying each key type once. */
async function pinnedKnownHostsLine(hv: HypervisorSsh, pin: string, signal: AbortSignal, timeoutMs: number): Promise<{ line: string; algorithms: string[] }> {
  const { host, port } = sshEndpoint(hv.uri);
  const { found, seen } = await findPinnedKey({ name: displayUri(hv.uri), host, port }, pin, { signal, timeoutMs });
  if (found) return { line: `${knownHostsName(host, port)} ${found.key.keyType} ${found.key.blob.toString('base64')}\n`, algorithms: found.algorithms };
  const presented = seen.map((k) => `${k.keyType} ${k.fingerprint}`).join(', ');
  throw new FarmError('HOST_KEY', `HOST KEY MISMATCH for hypervisor ${displayUri(hv.uri)}: pinned ${pin}, but it presented ${presented || 'no key'}. Not connecting.`, {
    hint: 'if the hypervisor was reinstalled, verify its new fingerprint out of band and update host_key in the inventory',
  });
}

/** Writes the wrapper (and a pinned known_hosts) for one hypervisor; dispose() removes them. */
export async function createSshWrapper(hv: HypervisorSsh, signal: AbortSignal, opts: WrapperOptions = {}): Promise<SshWrapper> {
  const connectTimeoutS = opts.connectTimeoutS ?? 20;
  let knownHosts = hv.known_hosts;
  let hostKeyAlgorithms: string[] | undefined;
  let pinnedLine: string | undefined;
  if (hv.host_key) {
    const pinned = await pinnedKnownHostsLine(hv, hv.host_key, signal, connectTimeoutS * 1000);
    pinnedLine = pinned.line;
    hostKeyAlgorithms = pinned.algorithms;
  } else if (knownHosts !== undefined) {
    // Checked here so the error names the file; ssh's own message only says verification failed.
    const { host, port } = sshEndpoint(hv.uri);
    const entries = await lookupKnownHosts(knownHosts, host, port);
    if (!entries.some((e) => e.marker === undefined)) {
      throw new FarmError('HOST_KEY', `host key for hypervisor ${displayUri(hv.uri)} is not known: no entry for ${knownHostsName(host, port)} in ${knownHosts}`, {
        hint: `verify the hypervisor's key out of band and add it to ${knownHosts}, or pin it with host_key`,
      });
    }
  }
  const dir = await mkdtemp(join(opts.tmpRoot ?? tmpdir(), 'farm-libvirt-'));
  try {
    if (pinnedLine !== undefined) {
      knownHosts = join(dir, 'known_hosts');
      await writeFile(knownHosts, pinnedLine, { mode: 0o600 });
    }
    const command = join(dir, 'ssh');
    const ssh = opts.ssh ?? userSshCommand(hv.uri) ?? 'ssh';
    const controlPath = controlPathIn(dir);
    const script = wrapperScript({
      ssh,
      knownHosts,
      hostKeyAlgorithms,
      identityOnly: hv.identity_file !== undefined,
      connectTimeoutS,
      keepaliveS: opts.keepaliveS ?? 15,
      controlPath,
    });
    await writeFile(command, script, { mode: 0o700 });
    return {
      command,
      dispose: async () => {
        if (controlPath !== undefined) await endMasters(ssh, dir);
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

/** The ControlPath for sockets in `dir`, or undefined (no sharing) when the path would be too long. */
function controlPathIn(dir: string): string | undefined {
  if (/["\\\x00-\x1f]/.test(dir)) return undefined;
  if (Buffer.byteLength(join(dir, CONTROL_PREFIX)) + 40 + 17 > SOCKET_PATH_MAX) return undefined;
  return join(sshPathLiteral(dir), `${CONTROL_PREFIX}%C`);
}

/**
 * Ends every master whose socket is in `dir` (one per destination; libvirt only ever uses one).
 * Failures are ignored: a master that did not start, or already ended, has nothing to end, and
 * one that does not answer still goes away CONTROL_PERSIST_S after its last session.
 */
async function endMasters(ssh: string, dir: string): Promise<void> {
  const names = await readdir(dir).catch(() => [] as string[]);
  const sockets = names.filter((n) => n.startsWith(CONTROL_PREFIX) && /^[0-9a-f]+$/.test(n.slice(CONTROL_PREFIX.length)));
  await Promise.all(
    sockets.map(
      (n) =>
        // -F /dev/null: no ssh_config can redirect this; the literal path (hex name, %-escaped
        // directory) names the socket, and the host argument is not used for -O.
        start([ssh, '-F', '/dev/null', '-o', `ControlPath="${join(sshPathLiteral(dir), n)}"`, '-O', 'exit', 'farm-libvirt-master'], {
          timeoutMs: 5000,
          code: 'SSH',
        }).done.catch(() => undefined),
    ),
  );
}
