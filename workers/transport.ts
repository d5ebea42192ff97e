// The worker transport seam: how the coordinator reaches a worker. The real implementation is an
// SSH session (workers/ssh/session.ts); everything above it (probe, podman, fetch) only uses this.

import type { Duplex, Readable, Writable } from 'node:stream';
import type { WorkerEndpoint } from './endpoint.ts';

export interface ExecResult {
  code: number;
  /** Signal name when the remote process was killed by one. */
  signal?: string | undefined;
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  signal?: AbortSignal;
  /** Bytes or a stream fed to the remote command's stdin. */
  stdin?: Buffer | string | Readable;
  /** Live output; when given, the data is also kept (up to maxBuffer) in the result. */
  onStdout?: (chunk: Buffer) => void;
  onStderr?: (chunk: Buffer) => void;
  /** Cap on stdout/stderr kept in memory (default 1 MiB each); the rest is dropped, never buffered. */
  maxBuffer?: number;
  /** Throw FarmError('REMOTE_COMMAND') on a non-zero exit (default true). */
  check?: boolean;
}

/** A running remote command whose stdout is consumed as a stream (large transfers). */
export interface RemoteProcess {
  stdout: Readable;
  stdin: Writable;
  /** Resolves when the command exits; stderr is collected (capped) for error messages. */
  done: Promise<ExecResult>;
  /** Ends the command (signal to the remote process, then the channel is closed). */
  kill(): void;
}

export interface SpawnOptions {
  signal?: AbortSignal;
  /** The stream carries bulk data (image bytes): the transport may move it on a path built for
   *  throughput rather than over its shared connection. */
  bulk?: boolean;
  /** Write the command's stdout straight into this open file, at its offset (for a file opened
   *  to append: at its end), instead of the `stdout` stream (which then only ends). `done`
   *  resolves once everything is in the file. */
  stdoutFd?: number;
}

export interface WorkerTransport {
  readonly worker: WorkerEndpoint;
  /** Runs argv on the worker. Every element is shell-quoted; nothing reaches a shell unquoted. */
  exec(argv: readonly string[], options?: ExecOptions): Promise<ExecResult>;
  /** Runs argv with its stdout as a stream. */
  spawn(argv: readonly string[], options?: SpawnOptions): Promise<RemoteProcess>;
  /** Readies the path bulk streams take (OpenSSH: the worker's master connection), so the next
   *  bulk spawn starts at once; callers overlap it with other work. Rejects only when `signal`
   *  fires: a path that could not be readied is reported by the spawn itself. */
  prepareBulk?(signal?: AbortSignal): Promise<void>;
  /** A byte stream to a unix socket on the worker (e.g. podman's API), over the same connection. */
  openUnixSocket(path: string): Promise<Duplex>;
  /** Why the connection ended when the farm did not end it (a dead link, the worker gone), with
   *  how long it had lived: what a failure seen through it (a stream cut "aborted") really is. */
  connectionLost?(): Error | undefined;
  close(): Promise<void>;
}
