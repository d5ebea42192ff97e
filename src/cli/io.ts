// The streams and exit code of one CLI invocation. Commands reach them through this context, so
// tests can run `run(argv, { stdout, stderr })` in-process and the bin is the only place that
// touches process.exitCode.

import { AsyncLocalStorage } from 'node:async_hooks';

export interface CliIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  stdin: NodeJS.ReadableStream;
  env: NodeJS.ProcessEnv;
  cwd: string;
  /** Cancels the command (Ctrl-C, SIGTERM). */
  signal: AbortSignal;
  exitCode: number;
}

const storage = new AsyncLocalStorage<CliIo>();

export function withIo<T>(io: CliIo, fn: () => Promise<T>): Promise<T> {
  return storage.run(io, fn);
}

export function io(): CliIo {
  const current = storage.getStore();
  if (!current) throw new Error('CLI io used outside a command');
  return current;
}

export function out(text: string): void {
  io().stdout.write(text.endsWith('\n') ? text : text + '\n');
}

export function err(text: string): void {
  io().stderr.write(text.endsWith('\n') ? text : text + '\n');
}
