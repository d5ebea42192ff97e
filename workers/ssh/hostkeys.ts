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
import { FarmError, errorMessage } from '../../src/errors.ts';
import type { Worker } from '../../src/inventory/schema.ts';

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
export function knownHostsFile(worker: Pick<Worker, 'known_hosts'>): string {
  const file = worker.known_hosts ?? '~/.ssh/known_hosts';
  return file === '~' || file.startsWith('~/') ? join(homedir(), file.slice(1)) : file;
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
          : `if the change is expected (host reinstalled), verify the new fingerprint out of band, remove the stale line (ssh-keygen -R '${knownHostsName(worker.host, worker.port)}' -f ${policy.file}) and run \`farm workers trust ${worker.name}\`; otherwise do not connect`;
      return new FarmError(
        'HOST_KEY',
        `HOST KEY CHANGED for ${who}: it presented ${keyType} ${seen}, but expected ${expected}. ` +
          'Someone could be intercepting the connection, or the host was reinstalled. Not connecting.',
        { hint },
      );
    }
  }
}

/** Records a host key in known_hosts (creates the file 0600 and its directory). Refuses when the
 *  file already holds a different key of the same type for the host: that line must go first. */
export async function trustHostKey(
  worker: Pick<Worker, 'name' | 'host' | 'port'>,
  file: string,
  keyBlob: Buffer,
  keyType: string,
): Promise<void> {
  const embedded = blobKeyType(keyBlob);
  if (embedded !== keyType) throw new FarmError('HOST_KEY', `key type ${keyType} does not match the key blob (${embedded})`);
  const entries = await lookupKnownHosts(file, worker.host, worker.port);
  const check = checkHostKey({ kind: 'known_hosts', file, entries }, keyBlob);
  if (check.status === 'ok') return; // already trusted
  if (check.status === 'revoked') throw hostKeyError(worker, { kind: 'known_hosts', file, entries }, check)!;
  const conflicting = entries.filter((e) => e.marker === undefined && e.keyType === keyType);
  if (conflicting.length > 0) {
    const where = conflicting.map((e) => `line ${e.line}`).join(', ');
    throw new FarmError('HOST_KEY', `${file} already has a different ${keyType} key for ${describeWorker(worker)} (${where})`, {
      hint: `remove the stale line first (ssh-keygen -R '${knownHostsName(worker.host, worker.port)}' -f ${file}), only if the change is expected`,
    });
  }
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
