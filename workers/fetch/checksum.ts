// The worker's own sha256 of a file, computed on the worker while the file travels.

import { FarmError } from '../../src/errors.ts';
import type { WorkerTransport } from '../transport.ts';

/**
 * Which program hashes on the worker. `auto` prefers OpenSSL's `openssl dgst`, whose SHA-256 uses
 * the CPU's SHA extensions, and falls back to coreutils' `sha256sum`: Debian's sha256sum has no
 * such code path and hashed ~250 MB/s against OpenSSL's ~1.5 GB/s on the lab machine, which
 * matters because the hash covers a sparse image's holes too (see test/bench/fetch.bench.ts).
 */
export type RemoteHasher = 'auto' | 'openssl' | 'sha256sum';

const AUTO_SCRIPT =
  'if command -v openssl >/dev/null 2>&1; then exec openssl dgst -sha256 -r -- "$1"; fi; exec sha256sum -- "$1"';

// The hash runs beside the transfer; at low priority it takes the CPU the transfer leaves, so on
// a busy worker the transfer (sshd, dd) is not slowed down by it.
const NICE = ['nice', '-n', '10'];

export function remoteHashArgv(path: string, hasher: RemoteHasher = 'auto'): string[] {
  switch (hasher) {
    case 'openssl':
      return [...NICE, 'openssl', 'dgst', '-sha256', '-r', '--', path];
    case 'sha256sum':
      return [...NICE, 'sha256sum', '--', path];
    case 'auto':
      // The path is a positional parameter of the script, never part of the script text.
      return [...NICE, 'sh', '-c', AUTO_SCRIPT, 'sh', path];
  }
}

/** Reads `HEX *path` (openssl -r) or `HEX  path` (sha256sum; a leading `\` marks escaped names). */
export function parseHashOutput(stdout: string): string | undefined {
  const m = /^\\?([0-9a-f]{64})[ \t]/.exec(stdout);
  return m?.[1];
}

export async function remoteSha256(
  transport: WorkerTransport,
  path: string,
  options: { signal?: AbortSignal; hasher?: RemoteHasher } = {},
): Promise<string> {
  const argv = remoteHashArgv(path, options.hasher);
  const r = await transport.exec(argv, { ...(options.signal ? { signal: options.signal } : {}), check: false, maxBuffer: 64 * 1024 });
  const hex = r.code === 0 ? parseHashOutput(r.stdout) : undefined;
  if (!hex) {
    throw new FarmError(
      'FETCH',
      `cannot compute the sha256 of ${path} on ${transport.worker.name} (exit code ${r.code}): ${(r.stderr || r.stdout).trim().slice(-500)}`,
      { hint: 'the worker needs openssl or coreutils (sha256sum)' },
    );
  }
  return hex;
}
