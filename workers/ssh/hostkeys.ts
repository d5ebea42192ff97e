// SSH host-key verification, the way OpenSSH does it: a worker's key is checked against a pinned
// fingerprint (inventory `host_key`) or a known_hosts file before any authentication happens.
// known_hosts is read through OpenSSH's own `ssh-keygen -F`, which understands hashed names,
// `[host]:port` entries, patterns and markers, so the farm never second-guesses the format.

import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, open, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { Client, type ServerHostKeyAlgorithm } from 'ssh2';
import { FarmError, errorMessage } from '../../src/core/errors.ts';
import type { WorkerEndpoint as Worker } from '../endpoint.ts';

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
export function knownHostsFile(worker: Pick<Worker, 'known_hosts'>, home: string = homedir()): string {
  const file = worker.known_hosts ?? '~/.ssh/known_hosts';
  return file === '~' || file.startsWith('~/') ? join(home, file.slice(1)) : file;
}

function describeWorker(worker: Pick<Worker, 'name' | 'host' | 'port'>): string {
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
  const out = await new Promise<string>((resolve, reject) => {
    execFile('ssh-keygen', ['-F', knownHostsName(host, port), '-f', file], { maxBuffer: 4 << 20 }, (err, stdout, stderr) => {
      // Exit status 1 means "no match"; anything else is a real failure.
      if (err && (err as { code?: unknown }).code !== 1) {
        const why = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'ssh-keygen (OpenSSH client) is not installed' : String(stderr).trim() || err.message;
        reject(new FarmError('HOST_KEY', `cannot look up ${knownHostsName(host, port)} in ${file}: ${why}`));
      } else resolve(String(stdout));
    });
  });
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
export async function loadHostKeyPolicy(worker: Pick<Worker, 'host' | 'port' | 'host_key' | 'known_hosts'>): Promise<HostKeyPolicy> {
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

// The signature algorithms a server can use with each key type (RSA keys sign with SHA-2 today).
const ALGORITHMS_FOR_TYPE: Record<string, ServerHostKeyAlgorithm[]> = {
  'ssh-ed25519': ['ssh-ed25519'],
  'ecdsa-sha2-nistp256': ['ecdsa-sha2-nistp256'],
  'ecdsa-sha2-nistp384': ['ecdsa-sha2-nistp384'],
  'ecdsa-sha2-nistp521': ['ecdsa-sha2-nistp521'],
  'ssh-rsa': ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'],
};

/** Host key algorithms to offer, limited to the types known for the host, so that a server with
 *  several keys presents the one we have. Undefined means ssh2's defaults (pin or unknown host). */
export function hostKeyAlgorithms(policy: HostKeyPolicy): ServerHostKeyAlgorithm[] | undefined {
  if (policy.kind === 'pinned') return undefined;
  const algos = new Set<ServerHostKeyAlgorithm>();
  for (const e of policy.entries) {
    if (e.marker !== undefined) continue;
    for (const a of ALGORITHMS_FOR_TYPE[e.keyType] ?? []) algos.add(a);
  }
  return algos.size > 0 ? [...algos] : undefined;
}

/** Which host key algorithms make the server present the key with this fingerprint: the key
 *  types are tried one by one with scanHostKey (no authentication). Undefined when none does. */
export async function findPinnedKeyAlgorithms(
  worker: Pick<Worker, 'name' | 'host' | 'port'>,
  pinned: string,
  options: { signal?: AbortSignal; timeoutMs?: number } = {},
): Promise<ServerHostKeyAlgorithm[] | undefined> {
  for (const algorithms of new Set(Object.values(ALGORITHMS_FOR_TYPE))) {
    try {
      const key = await scanHostKey(worker, { ...options, algorithms });
      if (key.fingerprint === pinned) return algorithms;
    } catch (err) {
      if (err instanceof FarmError && err.code === 'ABORTED') throw err;
      // the server has no key of this type
    }
  }
  return undefined;
}

/** The FarmError for a refused key; `undefined` for an accepted one. */
export function hostKeyError(
  worker: Pick<Worker, 'name' | 'host' | 'port'>,
  policy: HostKeyPolicy,
  check: HostKeyCheck,
  /** What the farm does instead: the default ends a connection; `farm workers trust` refuses. */
  refusal = 'Not connecting.',
): FarmError | undefined {
  const who = describeWorker(worker);
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

/** What `farm workers trust` finds: the presented key is recorded already, or the host has none. */
export type TrustCheck = { status: 'trusted'; presented: HostKey; entry: KnownHostEntry } | { status: 'new'; presented: HostKey };

const NOT_TRUSTED = 'Not trusted; known_hosts is unchanged.';

/**
 * Decides about trusting `presented` for a host whose known_hosts lines are `entries`. A host that
 * has any key recorded gets no other one, of any type: a man in the middle offering ecdsa where
 * ed25519 is recorded looks exactly like a new key type, so the stale line must be removed by hand
 * first. A revoked key is never trusted.
 */
export function trustCheck(worker: Pick<Worker, 'name' | 'host' | 'port'>, file: string, entries: KnownHostEntry[], presented: HostKey): TrustCheck {
  const policy: HostKeyPolicy = { kind: 'known_hosts', file, entries };
  const check = checkHostKey(policy, presented.blob);
  if (check.status === 'revoked') throw hostKeyError(worker, policy, check, NOT_TRUSTED)!;
  const keys = entries.filter((e) => e.marker === undefined);
  const same = keys.find((e) => e.blob.equals(presented.blob));
  if (same) return { status: 'trusted', presented, entry: same };
  if (keys.length === 0) return { status: 'new', presented };
  const expected = keys.map((e) => ({ keyType: e.keyType, fingerprint: e.fingerprint, source: `${e.file} line ${e.line}` }));
  throw hostKeyError(worker, policy, { status: 'changed', presented, expected }, NOT_TRUSTED)!;
}

/**
 * What `farm workers trust` should do about a worker, from what it presents. When keys are
 * recorded for the host, the server is first asked for a key of those types (as a connection
 * would: see hostKeyAlgorithms), so a host that holds several keys is not mistaken for a changed
 * one; only when it presents none of them is its preferred key read and refused.
 */
export async function examineForTrust(
  worker: Pick<Worker, 'name' | 'host' | 'port'>,
  file: string,
  options: { signal?: AbortSignal; timeoutMs?: number } = {},
): Promise<TrustCheck> {
  const entries = await lookupKnownHosts(file, worker.host, worker.port);
  const algorithms = hostKeyAlgorithms({ kind: 'known_hosts', file, entries });
  if (algorithms) {
    try {
      const presented = await scanHostKey(worker, { ...options, algorithms });
      return trustCheck(worker, file, entries, presented);
    } catch (err) {
      if (!(err instanceof FarmError) || err.code !== 'SSH') throw err;
      // No key of the recorded types (or no answer): read what it does present, below.
    }
  }
  return trustCheck(worker, file, entries, await scanHostKey(worker, options));
}

/**
 * Records a host key in known_hosts, creating the file (0600) and its directory (0700) when they
 * do not exist. Returns 'already' when the key is recorded already, and refuses (trustCheck) any
 * key for a host that has a different one. The check is made again here, just before the write.
 */
export async function trustHostKey(
  worker: Pick<Worker, 'name' | 'host' | 'port'>,
  file: string,
  keyBlob: Buffer,
  keyType: string,
): Promise<'added' | 'already'> {
  const embedded = blobKeyType(keyBlob);
  if (embedded !== keyType) throw new FarmError('HOST_KEY', `key type ${keyType} does not match the key blob (${embedded})`);
  const entries = await lookupKnownHosts(file, worker.host, worker.port);
  if (trustCheck(worker, file, entries, hostKeyFromBlob(keyBlob)).status === 'trusted') return 'already';
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  const fh = await open(file, 'a+', 0o600);
  try {
    const { size } = await fh.stat();
    let prefix = '';
    if (size > 0) {
      const last = Buffer.alloc(1);
      await fh.read(last, 0, 1, size - 1);
      if (last[0] !== 0x0a) prefix = '\n';
    }
    // One write of one line: O_APPEND makes it atomic with respect to other appenders.
    await fh.write(`${prefix}${knownHostsName(worker.host, worker.port)} ${keyType} ${keyBlob.toString('base64')}\n`);
    await fh.sync();
  } finally {
    await fh.close();
  }
  return 'added';
}

/** Learns a worker's host key without authenticating: the key exchange runs until the server
 *  presents its key, which is captured and then refused, so the connection ends before any
 *  credentials are sent. */
export async function scanHostKey(
  worker: Pick<Worker, 'name' | 'host' | 'port'>,
  options: { signal?: AbortSignal; timeoutMs?: number; algorithms?: ServerHostKeyAlgorithm[] } = {},
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
      else reject(err ?? new FarmError('SSH', `${describeWorker(worker)} closed the connection before presenting a host key`));
    };
    const onAbort = () => finish(new FarmError('ABORTED', 'cancelled'));
    signal?.addEventListener('abort', onAbort, { once: true });
    client.on('error', (err) => {
      if (captured) finish(undefined);
      else finish(new FarmError('SSH', `cannot reach ${describeWorker(worker)} to read its host key: ${err.message}`, { cause: err }));
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
      ...(options.algorithms ? { algorithms: { serverHostKey: options.algorithms } } : {}),
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
