// Runs a tool and collects its output; a failure names the command and its stderr.
// The stand-in runs inside its container image, which carries node and nothing of node_modules
// (scripts/lab.d/images.sh), so it cannot use zx as the host-side helpers do (../boot/run.mjs).
import { spawn } from 'node:child_process';

const children = new Set();

/** Kills tools still running (on SIGTERM/SIGINT). */
export function killChildren() {
  for (const c of children) c.kill('SIGKILL');
}

export function run(cmd, args, { cwd, capture = true, input, env } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, env: env ? { ...process.env, ...env } : process.env, stdio: [input === undefined ? 'ignore' : 'pipe', capture ? 'pipe' : 'inherit', 'pipe'] });
    if (input !== undefined) child.stdin.end(input);
    children.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (d) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d));
    child.on('error', (err) => {
      children.delete(child);
      reject(new Error(`cannot run ${cmd}: ${err.message}`));
    });
    child.on('close', (code, signal) => {
      children.delete(child);
      if (code === 0) resolve({ stdout, stderr });
      else {
        const why = signal ? `killed by ${signal}` : `exit status ${code}`;
        reject(new Error(`${cmd} ${args.join(' ')}: ${why}${stderr.trim() ? `: ${stderr.trim()}` : ''}`));
      }
    });
  });
}
