// Runs the real `farm` CLI (bin/farm.js) as a child process, as a user would.

import { spawn, type ChildProcess } from 'node:child_process';
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
