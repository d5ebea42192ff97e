// Cutting a lab worker's network link, for fault tests: an iptables DROP of everything on the
// host's eth0, both ways, inside its network namespace (FINs and keepalives vanish too, as on a
// dead link). Only the two rules added here are removed again, by their unique comment; a
// detached watchdog removes them anyway after a while, so a test killed half-way leaves the
// shared lab usable.

import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';

const run = promisify(execFile);
const WATCHDOG_S = 600;

export interface CutLink {
  /** When the link went dead (performance.now()). */
  at: number;
  restore(): Promise<void>;
}

/** The lab's namespace of a worker host (scripts/lab.d/common.sh: host_ns). */
export function hostNamespace(arch: string): string {
  return `farmlab-${arch}`;
}

export async function cutLink(arch: string): Promise<CutLink> {
  const ns = hostNamespace(arch);
  const comment = `farm-test-cut-${randomBytes(4).toString('hex')}`;
  const rules = [
    ['INPUT', '-i', 'eth0', '-m', 'comment', '--comment', comment, '-j', 'DROP'],
    ['OUTPUT', '-o', 'eth0', '-m', 'comment', '--comment', comment, '-j', 'DROP'],
  ];
  const del = rules.map((r) => ['ip', 'netns', 'exec', ns, 'iptables', '-D', ...r].join(' ')).join('; ');
  const watchdog = spawn('sh', ['-c', `sleep ${WATCHDOG_S}; ${del}`], { detached: true, stdio: 'ignore' });
  watchdog.unref();
  const added: string[][] = [];
  const restore = async () => {
    for (const r of added.splice(0).reverse()) {
      await run('ip', ['netns', 'exec', ns, 'iptables', '-D', ...r]).catch(() => undefined);
    }
    if (watchdog.pid !== undefined && watchdog.exitCode === null) {
      try {
        process.kill(-watchdog.pid, 'SIGTERM'); // our own detached group: the sleep and its shell
      } catch {
        // already gone
      }
    }
  };
  try {
    for (const r of rules) {
      const [chain, ...rest] = r;
      await run('ip', ['netns', 'exec', ns, 'iptables', '-I', chain!, '1', ...rest]);
      added.push(r);
    }
  } catch (err) {
    await restore();
    throw err;
  }
  return { at: performance.now(), restore };
}
