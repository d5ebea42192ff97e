// Boots a disk image with the lab's boot script (scripts/lab.d/boot/boot-image.mjs), as the
// farm's smoke check will: QEMU with the arch's firmware, a NoCloud seed, SSH with a per-boot key.

import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { REPO } from './cli.ts';

export const BOOT_SCRIPT = join(REPO, 'scripts', 'lab.d', 'boot', 'boot-image.mjs');

/** The script's --json result. */
export interface BootResult {
  arch: string;
  passed: boolean;
  reason?: string;
  accel?: 'kvm' | 'tcg';
  boot?: 'firmware' | 'direct-kernel';
  firmware?: string;
  console?: string;
  qemu?: string;
  login_seconds?: number;
  ssh_seconds?: number;
  ssh_output?: string;
  kernel_banner?: string | null;
  last_lines?: string[];
}

export interface BootRun {
  code: number | null;
  result: BootResult;
  stderr: string;
}

export function bootImage(args: string[], timeoutMs = 300_000): Promise<BootRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BOOT_SCRIPT, '--json', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGTERM');
      reject(new Error(`boot-image ${args.join(' ')} ran over ${timeoutMs} ms\n${stderr}`));
    }, timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      try {
        resolve({ code, result: JSON.parse(stdout) as BootResult, stderr });
      } catch {
        reject(new Error(`boot-image printed no JSON result (exit ${code}):\n${stdout}\n${stderr}`));
      }
    });
  });
}
