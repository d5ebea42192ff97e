// `farm serve` as a child process for integration tests: started on a free loopback port, its
// address read from its log, stopped by its PID.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { FARM_BIN } from './cli.ts';
import type { Snapshot } from '../../src/service/service.ts';

export interface ServeProcess {
  url: string;
  pid: number;
  child: ChildProcess;
  log(): string;
  snapshot(): Promise<Snapshot>;
  /** Sends the signal to the service's PID and waits for it to exit. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const running = new Set<ChildProcess>();

/**
 * A small inventory for a service that builds nothing by itself (one s390x worker, never reached
 * unless a build runs) with the given `service:` section, indented by two spaces. Returns its path.
 */
export async function serveInventory(service: string, dir?: string, extra = ''): Promise<string> {
  const at = dir ?? (await mkdtemp(join(tmpdir(), 'farm-serve-')));
  await writeFile(join(at, 'Containerfile'), 'FROM localhost/base:latest\n');
  // A context apart from builds/ (a context that holds the builds dir is refused).
  await mkdir(join(at, 'ctx'), { recursive: true });
  const file = join(at, 'farm.yaml');
  await writeFile(
    file,
    `version: 1
source: { containerfile: Containerfile, context: ctx }
workers: [{ name: w, host: 10.231.0.14, arch: s390x, host_key: "SHA256:${'A'.repeat(43)}" }]
service:
${service}
${extra}`,
  );
  return file;
}

export interface StartOptions {
  timeoutMs?: number;
  /** Another checkout's bin/farm.js (benchmarks compare against a base commit). */
  bin?: string;
}

export async function startServe(inventory: string, env: NodeJS.ProcessEnv = {}, opts: StartOptions = {}): Promise<ServeProcess> {
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const bin = opts.bin ?? FARM_BIN;
  const child = spawn(process.execPath, [bin, 'serve', '--inventory', inventory, '--listen', '127.0.0.1:0'], {
    cwd: dirname(dirname(bin)),
    env: { ...process.env, NO_COLOR: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  let log = '';
  child.stdout!.on('data', (d: Buffer) => (log += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => {
      running.delete(child);
      resolve({ code, signal });
    }),
  );
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`farm serve did not start in ${timeoutMs} ms:\n${log}`)), timeoutMs);
    const look = () => {
      const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(log);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    };
    child.stderr!.on('data', look);
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`farm serve exited before listening:\n${log}`));
    });
  });
  return {
    url,
    pid: child.pid!,
    child,
    log: () => log,
    async snapshot() {
      const r = await fetch(`${url}/api/builds`);
      return (await r.json()) as Snapshot;
    },
    async stop(signal = 'SIGTERM', ms = 120_000) {
      if (child.exitCode === null && child.signalCode === null) process.kill(child.pid!, signal);
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`farm serve (pid ${child.pid}) did not stop in ${ms} ms:\n${log}`)), ms)));
      try {
        return await Promise.race([exited, timeout]);
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

/** Kills (by PID) every service a test started and left running. */
export function killServes(): void {
  for (const child of running) if (child.pid) process.kill(child.pid, 'SIGKILL');
}
