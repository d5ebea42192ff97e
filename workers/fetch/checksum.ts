// The worker's own sha256 of a file, computed on the worker while the file travels.

import { FarmError } from '../../src/core/errors.ts';
import type { WorkerTransport } from '../transport.ts';

/**
 * Which program hashes on the worker. `auto` prefers a few lines of Python that read only the
 * file's data (SEEK_DATA/SEEK_HOLE) and feed its holes to the hash from a buffer of zeros, then
 * OpenSSL's `openssl dgst`, then coreutils' `sha256sum`. All three hash every byte of the
 * apparent size, holes as zeros; they differ in cost: reading a hole makes the kernel zero-fill
 * page cache and copy it out (~1.2 CPU-s more than Python for a 4 GiB image holding 1 GiB on
 * the lab), and Debian's sha256sum has no SHA-extension code path (~250 MB/s against ~1.5 GB/s
 * for OpenSSL, whose SHA-256 Python's hashlib also uses). See test/bench/fetch.bench.ts.
 */
export type RemoteHasher = 'auto' | 'python' | 'openssl' | 'sha256sum';

// Prints "HEX *PATH" like `openssl dgst -r`. A file system without SEEK_DATA reads as all data.
export const HOLE_AWARE_SHA256_PY = `
import errno, hashlib, os, sys
path = sys.argv[1]
fd = os.open(path, os.O_RDONLY)
size = os.fstat(fd).st_size
h = hashlib.sha256()
CHUNK = 4 << 20
zeros = memoryview(bytes(CHUNK))
buf = memoryview(bytearray(CHUNK))
def seek(pos, whence, past_end, unsupported):
    try:
        return os.lseek(fd, pos, whence)
    except OSError as e:
        if e.errno == errno.ENXIO:
            return past_end
        if e.errno == errno.EINVAL:
            return unsupported
        raise
pos = 0
while pos < size:
    data = min(seek(pos, os.SEEK_DATA, size, pos), size)
    while pos < data:
        n = min(data - pos, CHUNK)
        h.update(zeros[:n])
        pos += n
    if pos >= size:
        break
    end = min(seek(pos, os.SEEK_HOLE, size, size), size)
    while pos < end:
        os.lseek(fd, pos, os.SEEK_SET)
        n = os.readv(fd, [buf[:min(end - pos, CHUNK)]])
        if n <= 0:
            sys.exit("%s: short read at offset %d" % (path, pos))
        h.update(buf[:n])
        pos += n
sys.stdout.write(h.hexdigest() + " *" + path + chr(10))
`;

// $1: the file, $2: the Python program. Both are positional parameters, never script text.
// The system's Python comes first (no shims or virtualenvs in the way), isolated from the
// environment (-I) and without site packages (-S). A Python too old or broken for the program
// falls through to the next hasher.
const AUTO_SCRIPT = [
  'py=/usr/bin/python3; [ -x "$py" ] || py=$(command -v python3 2>/dev/null) || py=',
  'if [ -n "$py" ]; then "$py" -I -S -c "$2" "$1" && exit 0; fi',
  'if command -v openssl >/dev/null 2>&1; then exec openssl dgst -sha256 -r -- "$1"; fi',
  'exec sha256sum -- "$1"',
].join('; ');

// The hash runs beside the transfer; at low priority it takes the CPU the transfer leaves, so on
// a busy worker the transfer (sshd, dd) is not slowed down by it.
const NICE = ['nice', '-n', '10'];

export function remoteHashArgv(path: string, hasher: RemoteHasher = 'auto'): string[] {
  switch (hasher) {
    case 'python':
      return [...NICE, 'python3', '-I', '-S', '-c', HOLE_AWARE_SHA256_PY, path];
    case 'openssl':
      return [...NICE, 'openssl', 'dgst', '-sha256', '-r', '--', path];
    case 'sha256sum':
      return [...NICE, 'sha256sum', '--', path];
    case 'auto':
      return [...NICE, 'sh', '-c', AUTO_SCRIPT, 'sh', path, HOLE_AWARE_SHA256_PY];
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
      { hint: 'the worker needs python3, openssl or coreutils (sha256sum)' },
    );
  }
  return hex;
}
