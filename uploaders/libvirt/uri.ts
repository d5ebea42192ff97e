// The connection URI handed to virsh, built from an inventory hypervisor entry. Pure functions: no
// process is started here and nothing is ever given to a shell.
//
// libvirt's `ssh` transport (what qemu+ssh:// means) spawns the OpenSSH client as
//   <command> [-p PORT] [-l USER] [-i KEYFILE] -T -e none -- HOST sh -c '...virt-ssh-helper...'
// and, as checked against libvirt 9.0 (Debian 12), it ignores `known_hosts=` and `sshauth=` (those
// belong to the libssh/libssh2 transports), so they cannot make it verify host keys against the
// inventory's file. What it does honour is `command=`: the path of the ssh binary to run. The farm
// points that at a small generated wrapper (ssh-wrapper.ts) that adds StrictHostKeyChecking=yes
// and the known_hosts file, and sets:
//   keyfile=   the inventory identity_file (ssh -i)
//   no_verify=0  never 1: 1 makes libvirt pass StrictHostKeyChecking=no (refused here)
//   no_tty=1   ssh must never prompt (BatchMode)
//   command=   the wrapper

import { FarmError } from '../../src/core/errors.ts';

export interface ParsedUri {
  /** `qemu+ssh` */
  scheme: string;
  user: string | undefined;
  host: string;
  port: number | undefined;
  /** `/system` */
  path: string;
  /** Query parameters as written (still URI-escaped), in order. */
  params: Array<{ name: string; raw: string }>;
}

// driver+transport://[user[:password]@]host[:port]/path[?query]; the host may be an [IPv6] literal.
const URI = /^([a-z0-9]+\+ssh):\/\/(?:([^@/?#]*)@)?(\[[^\]]+\]|[^:/?#]+)(?::(\d+))?(\/[^?#]*)?(?:\?([^#]*))?$/i;

export function parseHypervisorUri(uri: string): ParsedUri {
  const m = URI.exec(uri.trim());
  if (!m) {
    throw new FarmError('INVENTORY', `hypervisor URI '${redactUri(uri)}' is not a qemu+ssh://[user@]host[:port]/system URI`, {
      hint: 'write it as qemu+ssh://root@hypervisor.example.com/system',
    });
  }
  const [, scheme, userinfo, host, port, path, query] = m;
  const params = (query ?? '')
    .split(/[&;]/)
    .filter((p) => p !== '')
    .map((p) => {
      const eq = p.indexOf('=');
      const name = decodeParam(eq < 0 ? p : p.slice(0, eq));
      return { name, raw: p };
    });
  return {
    scheme: scheme!,
    // A password in the URI is never used (ssh does key authentication) and never shown.
    user: userinfo === undefined ? undefined : decodeParam(userinfo.split(':')[0]!),
    host: host!,
    port: port === undefined ? undefined : Number(port),
    path: path ?? '/system',
    params,
  };
}

function decodeParam(s: string): string {
  try {
    return decodeURIComponent(s.replace(/\+/g, ' '));
  } catch {
    return s;
  }
}

/** The URI as shown in logs and errors: no query parameters, no password. */
export function displayUri(uri: string): string {
  try {
    const p = parseHypervisorUri(uri);
    return `${p.scheme}://${p.user === undefined ? '' : `${p.user}@`}${p.host}${p.port === undefined ? '' : `:${p.port}`}${p.path}`;
  } catch {
    return redactUri(uri);
  }
}

/** Best effort for a URI that does not parse: drop the query and any password. */
function redactUri(uri: string): string {
  return uri.replace(/\?.*$/s, '').replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@');
}

/** Where the volumes live, for PublishedImage.location: the host, with the port if not 22. */
export function uriLocation(uri: string): string {
  const p = parseHypervisorUri(uri);
  return p.port === undefined || p.port === 22 ? p.host : `${p.host}:${p.port}`;
}

/** Host and port as ssh and known_hosts see them (brackets of an IPv6 literal removed). */
export function sshEndpoint(uri: string): { host: string; port: number } {
  const p = parseHypervisorUri(uri);
  return { host: p.host.replace(/^\[(.*)\]$/, '$1'), port: p.port ?? 22 };
}

/** Parameters the farm sets itself; a value given for them in the inventory URI is replaced. */
const OWNED = new Set(['keyfile', 'no_verify', 'no_tty', 'command']);

/** The user's `command=` (an alternative ssh binary), which the wrapper then runs instead of ssh. */
export function userSshCommand(uri: string): string | undefined {
  const param = parseHypervisorUri(uri).params.find((p) => p.name === 'command');
  if (!param) return undefined;
  const eq = param.raw.indexOf('=');
  return eq < 0 ? undefined : decodeParam(param.raw.slice(eq + 1));
}

// libvirt URI-unescapes parameter values (docs: "parameter values must be URI-escaped");
// `/` stays readable.
function escapeValue(v: string): string {
  return encodeURIComponent(v).replace(/%2F/g, '/');
}

/** ssh expands %-tokens in identity file paths (also from -i): a literal % is written %%. */
export function sshPathLiteral(path: string): string {
  return path.replace(/%/g, '%%');
}

export interface ConnectSettings {
  /** The wrapper libvirt runs instead of ssh. */
  command: string;
  /** Private key for ssh -i; without it ssh uses the agent and its default keys. */
  identityFile?: string | undefined;
}

/** Why the URI's no_verify must go: any value but 0 makes libvirt pass StrictHostKeyChecking=no. */
function noVerifyProblem(p: ParsedUri): UriProblem | undefined {
  const noVerify = p.params.find((q) => q.name === 'no_verify');
  if (!noVerify || /^no_verify=0*$/.test(noVerify.raw)) return undefined;
  return {
    param: 'no_verify',
    message: 'no_verify turns SSH host key checking off',
    fix: 'remove no_verify from the URI; the farm verifies the host key against the known_hosts or host_key given for the hypervisor',
  };
}

export interface UriProblem {
  /** The query parameter at fault, if one is. */
  param?: string;
  message: string;
  fix: string;
}

// What libvirt's remote driver reads from a URI (src/remote/remote_driver.c, doRemoteOpen: name,
// command, socket, auth, sshauth, netcat, keyfile, pkipath, known_hosts, known_hosts_verify,
// no_sanity, no_verify, no_tty, plus mode, proxy and tls_priority; anything else it passes on to
// the hypervisor's driver). The farm lets through only those that keep ssh verifying host keys
// against the farm's known_hosts and never prompting.
const PASSED = new Set(['name', 'command', 'socket', 'netcat', 'no_sanity', 'mode', 'proxy']);
const FARM_SETS: Record<string, string> = { no_tty: '1', no_verify: '0' };
const SSH_FIX = 'remove it: give the hypervisor known_hosts: <file> or host_key: SHA256:..., which the farm makes ssh verify';

function paramProblem(name: string, value: string | undefined): UriProblem | undefined {
  if (PASSED.has(name)) return undefined;
  if (name in FARM_SETS) {
    if (value === FARM_SETS[name]) return undefined;
    return name === 'no_tty'
      ? { param: name, message: 'no_tty other than 1 lets ssh prompt, and nobody answers a prompt in a build', fix: 'remove it; the farm sets no_tty=1 itself' }
      : undefined; // no_verify: noVerifyProblem
  }
  switch (name) {
    case 'known_hosts_verify':
      return {
        param: name,
        message: `known_hosts_verify${value === undefined ? '' : `=${value}`} asks libvirt to ${value === 'normal' ? 'check' : 'accept unknown or changed'} host keys; only its libssh transports read it (qemu+ssh runs OpenSSH)`,
        fix: SSH_FIX,
      };
    case 'known_hosts':
      return { param: name, message: 'known_hosts= is read only by libvirt\'s libssh transports; with qemu+ssh it does nothing', fix: SSH_FIX };
    case 'sshauth':
      return { param: name, message: 'sshauth= is read only by libvirt\'s libssh transports; with qemu+ssh it does nothing', fix: 'remove it; ssh authenticates with identity_file, or ssh-agent without one' };
    case 'keyfile':
      return { param: name, message: 'keyfile= bypasses the identity file checks (exists, chmod 600, no %-tokens)', fix: `remove it and set identity_file: ${value ?? '<key file>'} on this hypervisor` };
    case 'pkipath':
    case 'tls_priority':
    case 'authfile':
    case 'auth':
      return { param: name, message: `${name}= does not apply to the qemu+ssh connection the farm makes`, fix: 'remove it' };
    default:
      return {
        param: name,
        message: `unknown URI parameter '${name}' (libvirt would pass it on to the hypervisor's driver)`,
        fix: `remove it; qemu+ssh URIs take ${[...PASSED].join(', ')}`,
      };
  }
}

/**
 * Everything in a hypervisor URI that the farm refuses: not a qemu+ssh URI, a password, or a
 * parameter that weakens host key checking, lets ssh prompt, or does nothing here. The inventory
 * check reports these; connectUri refuses no_verify again on its own.
 */
export function hypervisorUriProblems(uri: string): UriProblem[] {
  let p: ParsedUri;
  try {
    p = parseHypervisorUri(uri);
  } catch (err) {
    return [{ message: (err as FarmError).message, fix: (err as FarmError).hint ?? 'write it as qemu+ssh://root@hypervisor.example.com/system' }];
  }
  const out: UriProblem[] = [];
  const userinfo = /^[^:]+:\/\/([^@/?#]*)@/.exec(uri.trim())?.[1];
  if (userinfo?.includes(':')) {
    out.push({ message: 'the URI carries a password: it is never used (ssh authenticates with keys) and would show in process lists', fix: "remove ':' and the password from the URI" });
  }
  const noVerify = noVerifyProblem(p);
  if (noVerify) out.push(noVerify);
  for (const q of p.params) {
    const eq = q.raw.indexOf('=');
    const problem = paramProblem(q.name, eq < 0 ? undefined : decodeParam(q.raw.slice(eq + 1)));
    if (problem) out.push(problem);
  }
  return out;
}

/**
 * The URI virsh connects with: the inventory's URI with its own parameters kept and the farm's
 * appended. Refuses a URI that asks libvirt to turn host key checking off.
 */
export function connectUri(uri: string, settings: ConnectSettings): string {
  const p = parseHypervisorUri(uri);
  const noVerify = noVerifyProblem(p);
  if (noVerify) {
    throw new FarmError('INVENTORY', `hypervisor URI ${displayUri(uri)} sets no_verify, which turns SSH host key checking off`, {
      hint: 'remove no_verify from the URI and give the hypervisor a known_hosts file or a pinned host_key',
    });
  }
  const kept = p.params.filter((q) => !OWNED.has(q.name) || (q.name === 'keyfile' && settings.identityFile === undefined));
  const ours: string[] = [];
  if (settings.identityFile !== undefined) ours.push(`keyfile=${escapeValue(sshPathLiteral(settings.identityFile))}`);
  ours.push('no_verify=0', 'no_tty=1', `command=${escapeValue(settings.command)}`);
  const base = uri.trim().replace(/\?.*$/s, '');
  return `${base}?${[...kept.map((q) => q.raw), ...ours].join('&')}`;
}
