// The bulk-transfer capability: moving image bytes off a worker, on a path built for throughput
// rather than over the transport's shared connection (SSH: OpenSSH's client, workers/ssh/openssh.ts).
// It sits beside WorkerTransport rather than in it: only workers/fetch moves bulk data, and a
// transport without such a path still serves it through streamBulk.

import { createWriteStream } from 'node:fs';
import { PassThrough } from 'node:stream';
import { finished } from 'node:stream/promises';
import type { RemoteProcess, SpawnOptions, WorkerTransport } from './transport.ts';

export interface BulkSpawnOptions extends SpawnOptions {
  /** Write the command's stdout straight into this open file, at its offset (for a file opened
   *  to append: at its end), instead of the `stdout` stream (which then only ends). `done`
   *  resolves once everything is in the file. */
  stdoutFd?: number;
}

export interface BulkTransfer {
  /** Readies the path (OpenSSH: the worker's master connection), so the next spawn starts at
   *  once; callers overlap it with other work. Rejects only when `signal` fires: a path that could
   *  not be readied is reported by the spawn itself. */
  prepare(signal?: AbortSignal): Promise<void>;
  /** Runs argv with its stdout carrying bulk data. */
  spawn(argv: readonly string[], options?: BulkSpawnOptions): Promise<RemoteProcess>;
}

/** Bulk data through a plain spawn: Node writes stdout into `stdoutFd` when one is given. */
export function streamBulk(spawn: (argv: readonly string[], options: SpawnOptions) => Promise<RemoteProcess>): BulkTransfer {
  return {
    prepare: async () => {},
    async spawn(argv, options = {}) {
      const { stdoutFd, ...rest } = options;
      const proc = await spawn(argv, rest);
      if (stdoutFd === undefined) return proc;
      // A large mark lets chunks gather while a write is under way; they go out as one writev.
      // No start: writes go where the file's offset is (for a file opened to append: its end).
      const file = createWriteStream('', { fd: stdoutFd, autoClose: false, highWaterMark: 4 * 1024 * 1024 });
      proc.stdout.pipe(file);
      const done = Promise.all([proc.done, finished(file)]).then(([r]) => r);
      done.catch(() => {}); // callers that only kill() must not see an unhandled rejection
      return { ...proc, stdout: new PassThrough().end(), done, kill: () => proc.kill() };
    },
  };
}

/** The transport's bulk path, or its plain spawn. */
export function bulkOf(transport: WorkerTransport): BulkTransfer {
  return transport.bulk ?? streamBulk((argv, o) => transport.spawn(argv, o));
}
