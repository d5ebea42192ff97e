// Runs the real `farm` CLI: bin/farm.js as a child process, as a user would, or main() in-process.

import { spawn, type ChildProcess } from 'node:child_process';
import { PassThrough, Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';

export const REPO = fileURLToPath(new URL('../..', import.meta.url));
export const FARM_BIN = fileURLToPath(new URL('../../bin/farm.js', import.meta.url));

export interface FarmRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface FarmOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
  /** Called with the child as soon as it starts (e.g. to send SIGINT). */
  onSpawn?: (child: ChildProcess) => void;
  onStderr?: (text: string) => void;
}

export function farm(args: string[], opts: FarmOptions = {}): Promise<FarmRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [FARM_BIN, ...args], {
      cwd: opts.cwd ?? REPO,
      env: { ...process.env, NO_COLOR: '1', ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      opts.onStderr?.(d.toString());
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`farm ${args.join(' ')} timed out\nstderr:\n${stderr}`));
    }, opts.timeoutMs ?? 600_000);
    opts.onSpawn?.(child);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** A stream that collects what is written; `isTTY` makes it look like a terminal. */
export function sink(isTTY = false): PassThrough & { text(): string; isTTY?: boolean } {
  const s = new PassThrough() as PassThrough & { text(): string; isTTY?: boolean };
  let text = '';
  s.on('data', (d: Buffer) => (text += d.toString()));
  s.text = () => text;
  if (isTTY) s.isTTY = true;
  return s;
}

/**
 * Runs the CLI in-process through main(), as bin/farm.js does after its fast path: its own
 * streams, environment (nothing from this process's unless given), working directory and stdin.
 */
export async function cli(
  argv: string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string; stdin?: string; stdoutTTY?: boolean; stderrTTY?: boolean } = {},
): Promise<CliResult> {
  const { main } = await import('../../src/cli/main.ts');
  const stdout = sink(opts.stdoutTTY);
  const stderr = sink(opts.stderrTTY);
  const code = await main(argv, {
    stdout,
    stderr,
    stdin: Readable.from(opts.stdin === undefined ? [] : [opts.stdin]),
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...opts.env },
    cwd: opts.cwd ?? REPO,
  });
  await new Promise((r) => setImmediate(r));
  return { code, stdout: stdout.text(), stderr: stderr.text() };
}
