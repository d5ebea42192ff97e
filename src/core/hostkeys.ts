// SSH host keys, the way OpenSSH handles them: a host's key is checked against a pinned
// fingerprint (inventory `host_key`) or a known_hosts file before any authentication happens.
// known_hosts is read through OpenSSH's own `ssh-keygen -F`, which understands hashed names,
// `[host]:port` entries, patterns and markers, so the farm never second-guesses the format.
//
// The one home of this logic: workers/ssh (ssh2 connections, `farm workers trust`) and the
// libvirt uploader's ssh wrapper (uploaders/libvirt/ssh-wrapper.ts) both use it, so a pin means
// the same key, found the same way, with the same signature algorithms, wherever it is written.

import { createHash } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { Client, type ServerHostKeyAlgorithm } from 'ssh2';
import { FarmError, errorMessage } from './errors.ts';
import { ProcessError, run } from './process.ts';

/** A host reached over SSH, as messages name it. */
export interface SshHost {
  name: string;
  host: string;
  port: number;
}

/** Where a host's expected key is written (a worker's or a hypervisor's inventory fields). */
export interface HostKeySettings {
  host: string;
  port: number;
  host_key?: string | undefined;
  known_hosts?: string | undefined;
}

export interface HostKey {
  /** Key type as written in known_hosts, e.g. `ssh-ed25519`. */
  keyType: string;
  /** The raw public key blob (what the server sends during key exchange). */
  blob: Buffer;
  /** `SHA256:` + unpadded base64, as `ssh-keygen -lf` prints. */
  fingerprint: string;
}

export interface KnownHostEntry extends HostKey {
  file: string;
  line: number;
  /** `@revoked` or `@cert-authority` lines; plain host keys have none. */
  marker?: 'revoked' | 'cert-authority';
}

/** Where a worker's expected key comes from. */
export type HostKeyPolicy =
  | { kind: 'pinned'; fingerprint: string }
  | { kind: 'known_hosts'; file: string; entries: KnownHostEntry[] };

export type HostKeyCheck =
  | { status: 'ok'; presented: HostKey }
  | { status: 'unknown'; presented: HostKey }
  | { status: 'changed'; presented: HostKey; expected: ExpectedKey[] }
  | { status: 'revoked'; presented: HostKey; entry: KnownHostEntry };

export interface ExpectedKey {
  keyType?: string;
  fingerprint: string;
  /** Where the expectation is written: `FILE line N` or `inventory host_key`. */
  source: string;
}

/** OpenSSH's SHA256 fingerprint of a public key blob. */
export function fingerprint(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/** The key type embedded at the start of an SSH public key blob (a uint32-length string). */
export function blobKeyType(blob: Buffer): string {
  if (blob.length < 4) throw new FarmError('HOST_KEY', 'malformed host key blob (too short)');
  const len = blob.readUInt32BE(0);
  if (len === 0 || len > 64 || 4 + len > blob.length) throw new FarmError('HOST_KEY', 'malformed host key blob');
  return blob.subarray(4, 4 + len).toString('latin1');
}

export function hostKeyFromBlob(blob: Buffer): HostKey {
  return { keyType: blobKeyType(blob), blob, fingerprint: fingerprint(blob) };
}

/** The name a host is recorded under in known_hosts: `host`, or `[host]:port` off port 22. */
export function knownHostsName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

/** The known_hosts file used for a worker (inventory setting, else ~/.ssh/known_hosts). */
export function knownHostsFile(worker: Pick<HostKeySettings, 'known_hosts'>, home: string = homedir()): string {
  const file = worker.known_hosts ?? '~/.ssh/known_hosts';
  return file === '~' || file.startsWith('~/') ? join(home, file.slice(1)) : file;
}

export function describeHost(worker: SshHost): string {
  return `${worker.name} (${worker.host}:${worker.port})`;
}

// ssh-keygen prints, for each match, `# Host NAME found: line N [REVOKED|CA]` and then the line.
const FOUND = /^# Host .* found: line (\d+)\b/;

/** The known_hosts lines that apply to host:port, via `ssh-keygen -F`. A missing file has none. */
export async function lookupKnownHosts(file: string, host: string, port: number): Promise<KnownHostEntry[]> {
  try {
    await stat(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new FarmError('HOST_KEY', `cannot read known_hosts file ${file}: ${errorMessage(err)}`);
  }
  let out: string;
  try {
    const r = await run(['ssh-keygen', '-F', knownHostsName(host, port), '-f', file], { code: 'HOST_KEY', timeoutMs: 60_000 }).catch((err: unknown) => {
      // Exit status 1 means "no match"; anything else is a real failure.
      if (err instanceof ProcessError && err.result?.code === 1) return err.result;
      throw err;
    });
    out = r.stdout;
  } catch (err) {
    const why = /is not installed/.test(errorMessage(err))
      ? 'ssh-keygen (OpenSSH client) is not installed'
      : (err instanceof ProcessError && err.stderr.trim()) || errorMessage(err);
    throw new FarmError('HOST_KEY', `cannot look up ${knownHostsName(host, port)} in ${file}: ${why}`);
  }
  const entries: KnownHostEntry[] = [];
  let line: number | undefined;
  for (const text of out.split('\n')) {
    const found = FOUND.exec(text);
    if (found) {
      line = Number(found[1]);
      continue;
    }
    if (line === undefined || text.trim() === '' || text.startsWith('#')) continue;
    const fields = text.trim().split(/\s+/);
    let marker: KnownHostEntry['marker'];
    if (fields[0]?.startsWith('@')) {
      const m = fields.shift();
      if (m === '@revoked') marker = 'revoked';
      else if (m === '@cert-authority') marker = 'cert-authority';
      else continue; // an unknown marker: never treat the line as a trusted key
    }
    const [, keyType, b64] = fields;
    if (!keyType || !b64) continue;
    const blob = Buffer.from(b64, 'base64');
    // A line whose blob does not carry the type it claims is corrupt; skip it rather than trust it.
    let embedded: string;
    try {
      embedded = blobKeyType(blob);
    } catch {
      continue;
    }
    if (embedded !== keyType) continue;
    entries.push({ keyType, blob, fingerprint: fingerprint(blob), file, line, ...(marker ? { marker } : {}) });
    line = undefined;
  }
  return entries;
}

/** Loads what a worker's host key must be: its pin, or its known_hosts entries. */
export async function loadHostKeyPolicy(worker: HostKeySettings): Promise<HostKeyPolicy> {
  if (worker.host_key) return { kind: 'pinned', fingerprint: worker.host_key };
  const file = knownHostsFile(worker);
  return { kind: 'known_hosts', file, entries: await lookupKnownHosts(file, worker.host, worker.port) };
}

/** Decides whether a presented key is acceptable. Follows OpenSSH: a revoked key always loses,
 *  any matching line wins, a different key of a type we know is a change. */
export function checkHostKey(policy: HostKeyPolicy, blob: Buffer): HostKeyCheck {
  const presented = hostKeyFromBlob(blob);
  if (policy.kind === 'pinned') {
    return presented.fingerprint === policy.fingerprint
      ? { status: 'ok', presented }
      : { status: 'changed', presented, expected: [{ fingerprint: policy.fingerprint, source: 'inventory host_key' }] };
  }
  const revoked = policy.entries.find((e) => e.marker === 'revoked' && e.blob.equals(blob));
  if (revoked) return { status: 'revoked', presented, entry: revoked };
  // Certificate authorities sign host certificates, which the farm does not use; they are never host keys.
  const keys = policy.entries.filter((e) => e.marker === undefined);
  if (keys.some((e) => e.blob.equals(blob))) return { status: 'ok', presented };
  if (keys.length === 0) return { status: 'unknown', presented };
  const sameType = keys.filter((e) => e.keyType === presented.keyType);
  const expected = (sameType.length > 0 ? sameType : keys).map((e) => ({
    keyType: e.keyType,
    fingerprint: e.fingerprint,
    source: `${e.file} line ${e.line}`,
  }));
  return { status: 'changed', presented, expected };
}

// The signature algorithms a server can use with each key type. RSA keys sign with SHA-2 only:
// SHA-1 `ssh-rsa` signatures are open to chosen-prefix collisions, OpenSSH has refused them by
// default since 8.8, and the farm's own OpenSSH paths (bulk streams, libvirt's ssh) would refuse
// such a host anyway. A host that can sign only with SHA-1 is refused everywhere, not only there.
const ALGORITHMS_FOR_TYPE: Record<string, ServerHostKeyAlgorithm[]> = {
  'ssh-ed25519': ['ssh-ed25519'],
  'ecdsa-sha2-nistp256': ['ecdsa-sha2-nistp256'],
  'ecdsa-sha2-nistp384': ['ecdsa-sha2-nistp384'],
  'ecdsa-sha2-nistp521': ['ecdsa-sha2-nistp521'],
  'ssh-rsa': ['rsa-sha2-512', 'rsa-sha2-256'],
};

/** The signature algorithms for a key type (as known_hosts writes it); [] for one the farm does not use. */
export function algorithmsForKeyType(keyType: string): ServerHostKeyAlgorithm[] {
  return [...(ALGORITHMS_FOR_TYPE[keyType] ?? [])];
}

/** Every host key algorithm the farm accepts, most preferred first: what it offers when nothing
 *  limits the choice (a pin, an unknown host). ssh2's own default would add SHA-1 `ssh-rsa`. */
export const ACCEPTED_HOST_KEY_ALGORITHMS: readonly ServerHostKeyAlgorithm[] = Object.values(ALGORITHMS_FOR_TYPE).flat();

/** Host key algorithms to offer, limited to the types known for the host, so that a server with
 *  several keys presents the one we have. Undefined means all accepted ones (pin or unknown host). */
export function hostKeyAlgorithms(policy: HostKeyPolicy): ServerHostKeyAlgorithm[] | undefined {
  if (policy.kind === 'pinned') return undefined;
  const algos = new Set<ServerHostKeyAlgorithm>();
  for (const e of policy.entries) {
    if (e.marker !== undefined) continue;
    for (const a of ALGORITHMS_FOR_TYPE[e.keyType] ?? []) algos.add(a);
  }
  return algos.size > 0 ? [...algos] : undefined;
}

export interface PinnedKeySearch {
  /** The key with the pinned fingerprint and the algorithms that make the host present it. */
  found?: { key: HostKey; algorithms: ServerHostKeyAlgorithm[] };
  /** Every other key the host presented, for the refusal. */
  seen: HostKey[];
}

/** Finds the host's key with the pinned fingerprint: a pin says nothing about the key type, so
 *  each type is asked for once with scanHostKey (no authentication). A host without a key of a
 *  type ends that key exchange, and the next type is tried; other failures are thrown. */
export async function findPinnedKey(
  host: SshHost,
  pinned: string,
  options: { signal?: AbortSignal | undefined; timeoutMs?: number | undefined } = {},
): Promise<PinnedKeySearch> {
  const seen: HostKey[] = [];
  for (const algorithms of Object.values(ALGORITHMS_FOR_TYPE)) {
    let key: HostKey;
    try {
      key = await scanHostKey(host, { ...options, algorithms });
    } catch (err) {
      if (!options.signal?.aborted && err instanceof FarmError && err.code === 'SSH' && /handshake failed|no matching/i.test(errorMessage(err))) continue;
      throw err;
    }
    if (key.fingerprint === pinned) return { found: { key, algorithms: algorithmsForKeyType(key.keyType) }, seen };
    seen.push(key);
  }
  return { seen };
}

/** Learns a worker's host key without authenticating: the key exchange runs until the server
 *  presents its key, which is captured and then refused, so the connection ends before any
 *  credentials are sent. */
export async function scanHostKey(
  worker: SshHost,
  options: { signal?: AbortSignal | undefined; timeoutMs?: number | undefined; algorithms?: readonly ServerHostKeyAlgorithm[] | undefined } = {},
): Promise<HostKey> {
  const { signal, timeoutMs = 20_000 } = options;
  if (signal?.aborted) throw new FarmError('ABORTED', 'cancelled');
  return new Promise<HostKey>((resolve, reject) => {
    const client = new Client();
    let captured: HostKey | undefined;
    let settled = false;
    const finish = (err: Error | undefined) => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      client.removeAllListeners('ready');
      client.on('error', () => {}); // late socket errors after we are done are irrelevant
      client.end();
      if (captured && !err) resolve(captured);
      else reject(err ?? new FarmError('SSH', `${describeHost(worker)} closed the connection before presenting a host key`));
    };
    const onAbort = () => finish(new FarmError('ABORTED', 'cancelled'));
    signal?.addEventListener('abort', onAbort, { once: true });
    client.on('error', (err) => {
      if (captured) finish(undefined);
      else finish(new FarmError('SSH', `cannot reach ${describeHost(worker)} to read its host key: ${err.message}`, { cause: err }));
    });
    client.on('close', () => finish(undefined));
    // Authentication must never happen here; the verifier always refuses, so `ready` cannot fire.
    client.on('ready', () => finish(new FarmError('HOST_KEY', 'internal error: host key scan reached authentication')));
    client.connect({
      host: worker.host,
      port: worker.port,
      username: 'farm-host-key-scan',
      readyTimeout: timeoutMs,
      authHandler: () => false,
      algorithms: { serverHostKey: [...(options.algorithms ?? ACCEPTED_HOST_KEY_ALGORITHMS)] },
      hostVerifier: (key: Buffer) => {
        try {
          captured = hostKeyFromBlob(key);
        } catch (err) {
          finish(err as Error);
        }
        return false;
      },
    });
  });
}
