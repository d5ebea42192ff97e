// The verified, sparse, streaming fetch of one file from a worker.
//
// GNU tar on the worker finds the file's holes (SEEK_DATA/SEEK_HOLE) and reports them as the
// sparse map of a PAX 1.0 member; the data regions then travel (holes never do), and at the same
// time the worker hashes the file itself (checksum.ts). Locally, data lands at its offsets in
// `<local>.partial`, holes stay holes, and the sha256 of the whole file is computed on the way.
// Only a file whose hash equals the worker's is renamed to its final name.
//
// The data is a bulk stream: with OpenSSH's client installed it travels through `ssh` rather than
// the shared ssh2 connection (workers/ssh/openssh.ts). Two ways to move it (FetchOptions.method):
//  - `ranges` (default): only the head of tar's stream is read (headers + map), then dd reads the
//    regions in 1 MiB blocks; tar's own sparse reader reads 512 bytes per call, which was the
//    bottleneck on the lab for files with holes. The bulk path (OpenSSH's master connection to
//    the worker) is readied while the map is read, so readers start with a channel, not a login.
//    A file of few ranges (a dense one, as qcow2 outputs are, or a raw disk whose extents merge
//    into a few ranges, see directRanges) is written by one reader per range whose stdout is the
//    partial file itself, opened for appending and extended to the range's offset first; the
//    hasher follows the file on disk. Nothing passes through a pipe or Node, which on the lab
//    cost ~1.5 s per GiB (the copy into the page cache from cold buffers) and made the
//    difference against scp. Files of many scattered ranges come as one stream of the
//    concatenated ranges, written at their offsets by Node.
//  - `tar`: tar's whole stream, parsed with tar-stream. Also the fallback for maps too large to
//    read up front.

import { mkdir, open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { dirname, posix } from 'node:path';
import type { Readable } from 'node:stream';
import { FarmError, errorMessage } from '../../src/core/errors.ts';
import { syncDir } from '../../src/core/atomic.ts';
import { bulkOf } from '../bulk.ts';
import type { ExecResult, RemoteProcess, WorkerTransport } from '../transport.ts';
import { remoteSha256, type RemoteHasher } from './checksum.ts';
import { remoteLayout, tarArgv } from './layout.ts';
import { directRanges, planRanges, rangesArgv, rangesInput } from './ranges.ts';
import { followRanges, receiveRanges, receiveTarFile, type ReceiveProgress, type Received } from './receive.ts';

export { tarArgv } from './layout.ts';

export interface FetchProgress {
  /** Bytes of the file done so far, holes included. */
  received: number;
  /** The file's apparent size, once known. */
  total?: number;
  /** Bytes that actually crossed the connection. */
  transferred: number;
}

export type FetchMethod = 'ranges' | 'tar';

export interface FetchOptions {
  signal?: AbortSignal;
  onProgress?: (p: FetchProgress) => void;
  /** Minimum time between progress calls (default 250 ms); a last call comes at the end. */
  progressIntervalMs?: number;
  /** How the data travels (default ranges, see above). */
  method?: FetchMethod;
  /** Program that hashes on the worker (default auto: Python reading only data, else openssl, else sha256sum). */
  hasher?: RemoteHasher;
}

export interface FetchResult {
  /** Apparent size of the file. */
  size: number;
  sha256: string;
  /** Bytes received over the connection (tar headers and map, data, small holes sent along). */
  bytesReceived: number;
  seconds: number;
}

/** Fetches remotePath from the worker into localPath, verified against the worker's sha256. */
export async function fetchFile(
  transport: WorkerTransport,
  remotePath: string,
  localPath: string,
  options: FetchOptions = {},
): Promise<FetchResult> {
  const { signal, onProgress, progressIntervalMs = 250 } = options;
  if (!posix.isAbsolute(remotePath) || remotePath.endsWith('/')) {
    throw new FarmError('FETCH', `remote path must be an absolute file path, got ${JSON.stringify(remotePath)}`);
  }
  if (signal?.aborted) throw new FarmError('ABORTED', `cancelled before fetching ${remotePath}`);
  const started = performance.now();
  const worker = transport.worker.name;
  const partial = `${localPath}.partial`;
  // One controller stops every remote command, whether the caller aborts or a step fails.
  const stop = new AbortController();
  const onAbort = () => stop.abort();
  signal?.addEventListener('abort', onAbort, { once: true });

  let fh: FileHandle | undefined;
  let appendFh: FileHandle | undefined;
  let proc: RemoteProcess | undefined;
  let bytesReceived = 0;
  let lastProgress = 0;
  const progress = (p: ReceiveProgress, force: boolean) => {
    if (!onProgress) return;
    const now = performance.now();
    if (!force && now - lastProgress < progressIntervalMs) return;
    lastProgress = now;
    onProgress({ received: p.reached, ...(p.total !== undefined ? { total: p.total } : {}), transferred: bytesReceived });
  };
  const commandFailed = (what: string, exit: ExecResult) =>
    new FarmError('FETCH', `${what} on ${worker} failed for ${remotePath} (exit code ${exit.code}): ${exit.stderr.trim().slice(-1000)}`, {
      hint: exit.stderr.includes('changed as we read it') ? 'the file was being written during the fetch; fetch it again once the writer is done' : undefined,
    });
  /** Runs a receive step; if the stream ends badly because the remote command failed, says so. */
  const receiving = async (what: string, p: RemoteProcess, step: Promise<Received>): Promise<Received> => {
    let received: Received;
    try {
      received = await step;
    } catch (err) {
      // Draining lets a finished command's channel close so its exit status arrives. A command
      // that failed (or a connection that dropped) explains a short stream better than its shape.
      p.stdout.resume();
      const exit = await settledWithin(p.done, 2_000);
      if (exit?.error) throw exit.error;
      if (exit?.value && exit.value.code !== 0) throw commandFailed(what, exit.value);
      throw err;
    }
    const exit = await p.done;
    if (exit.code !== 0) throw commandFailed(what, exit);
    return received;
  };
  const counted = (stream: Readable): Readable => {
    stream.on('data', (chunk: Buffer) => {
      bytesReceived += chunk.length;
    });
    return stream;
  };

  try {
    await mkdir(dirname(localPath), { recursive: true });
    fh = await open(partial, 'w+', 0o644); // read too: the hasher reads back what was written
    const remoteHash = remoteSha256(transport, remotePath, {
      signal: stop.signal,
      ...(options.hasher ? { hasher: options.hasher } : {}),
    });
    remoteHash.catch(() => {}); // awaited below; a failure meanwhile must not go unhandled

    const method = options.method ?? 'ranges';
    const bulk = bulkOf(transport);
    // The bulk path (OpenSSH's master connection) comes up while the map is read.
    const [layout] = await Promise.all([
      method === 'tar' ? undefined : remoteLayout(transport, remotePath, { signal: stop.signal }),
      bulk.prepare(stop.signal),
    ]);
    let received: Received;
    const direct = layout ? directRanges(layout.regions) : undefined;
    if (layout && direct) {
      // Few ranges (one for a dense file, as qcow2 outputs are): each is written by a reader whose
      // stdout is the file itself, opened for appending: no pipe, no copy through Node; the hasher
      // follows the file on disk. The file is extended to each range's offset before its reader
      // starts, so the holes in between stay holes.
      bytesReceived += layout.headBytes;
      appendFh = await open(partial, 'a');
      const appendFd = appendFh.fd;
      received = await followRanges(
        fh,
        layout.size,
        direct,
        async () => {
          const reader = await bulk.spawn(rangesArgv(remotePath), { signal: stop.signal, stdoutFd: appendFd });
          const done = reader.done.then((exit) => {
            if (exit.code !== 0) throw commandFailed('dd', exit);
          });
          done.catch(() => {}); // a reader opened ahead and then cancelled is never awaited
          return { start: (range) => reader.stdin.end(rangesInput([range])), done, cancel: () => reader.kill() };
        },
        (p) => progress(p, false),
      );
      bytesReceived += received.dataBytes;
    } else if (layout) {
      bytesReceived += layout.headBytes;
      const plan = planRanges(layout.regions);
      const reader = await bulk.spawn(rangesArgv(remotePath), { signal: stop.signal });
      proc = reader;
      reader.stdin.end(rangesInput(plan.ranges));
      const stdout = counted(reader.stdout);
      received = await receiving(
        'dd',
        reader,
        receiveRanges(stdout, fh, layout.size, plan.segments, (p) => progress(p, false)),
      );
    } else {
      proc = await bulk.spawn(tarArgv(remotePath), { signal: stop.signal });
      proc.stdin.end();
      const stdout = counted(proc.stdout);
      received = await receiving(
        'tar',
        proc,
        receiveTarFile(stdout, fh, posix.basename(remotePath), (p) => progress(p, false)),
      );
    }

    const got = received.sha256;
    const expected = await remoteHash;
    if (got !== expected) {
      throw new FarmError('CHECKSUM', `sha256 mismatch for ${remotePath} from ${worker}: the worker has ${expected}, received ${got}`, {
        hint: 'the transfer or the file changed; fetch again, and check the worker disk if it repeats',
      });
    }
    progress({ reached: received.size, total: received.size }, true);
    await fh.sync();
    await appendFh?.close();
    appendFh = undefined;
    await fh.close();
    fh = undefined;
    await rename(partial, localPath);
    await syncDir(dirname(localPath));
    return { size: received.size, sha256: got, bytesReceived, seconds: (performance.now() - started) / 1000 };
  } catch (err) {
    stop.abort();
    proc?.kill();
    await appendFh?.close().catch(() => {});
    await fh?.close().catch(() => {});
    await unlink(partial).catch(() => {});
    if (signal?.aborted) throw new FarmError('ABORTED', `cancelled while fetching ${remotePath} from ${worker}`);
    if (err instanceof FarmError && !err.message.includes(remotePath)) {
      throw new FarmError(err.code, `fetching ${remotePath} from ${worker}: ${err.message}`, { cause: err, ...(err.hint ? { hint: err.hint } : {}) });
    }
    if (err instanceof FarmError) throw err;
    throw new FarmError('FETCH', `fetching ${remotePath} from ${worker} failed: ${errorMessage(err)}`, { cause: err });
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}

/** How the promise settled within ms, or undefined if it did not. */
async function settledWithin<T>(p: Promise<T>, ms: number): Promise<{ value?: T; error?: unknown } | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
  });
  try {
    return await Promise.race([p.then((value) => ({ value }), (error: unknown) => ({ error })), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
