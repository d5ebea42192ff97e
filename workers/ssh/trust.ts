// `farm workers trust`: trust on first use, the way OpenSSH's known_hosts works. A host that has a
// key recorded gets no other one; the key is appended to known_hosts only after these checks.

import { mkdir, open } from 'node:fs/promises';
import { dirname } from 'node:path';
import { FarmError } from '../../src/core/errors.ts';
import {
  blobKeyType,
  checkHostKey,
  hostKeyAlgorithms,
  hostKeyFromBlob,
  knownHostsName,
  lookupKnownHosts,
  scanHostKey,
  type HostKey,
  type HostKeyPolicy,
  type KnownHostEntry,
  type SshHost,
} from '../../src/core/hostkeys.ts';
import { hostKeyError } from './errors.ts';

/** What `farm workers trust` finds: the presented key is recorded already, or the host has none. */
export type TrustCheck = { status: 'trusted'; presented: HostKey; entry: KnownHostEntry } | { status: 'new'; presented: HostKey };

const NOT_TRUSTED = 'Not trusted; known_hosts is unchanged.';

/**
 * Decides about trusting `presented` for a host whose known_hosts lines are `entries`. A host that
 * has any key recorded gets no other one, of any type: a man in the middle offering ecdsa where
 * ed25519 is recorded looks exactly like a new key type, so the stale line must be removed by hand
 * first. A revoked key is never trusted.
 */
export function trustCheck(worker: SshHost, file: string, entries: KnownHostEntry[], presented: HostKey): TrustCheck {
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
  worker: SshHost,
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
  worker: SshHost,
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

