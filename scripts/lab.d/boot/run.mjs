// Runs tools for the lab's host-side boot helpers through zx, as the farm runs its own local
// programs (src/core/process.ts; these helpers are plain JS run by node, so they cannot import
// the TypeScript runner). argv is quoted word by word by zx; nothing reaches a shell unquoted.
// The bib stand-in (../bib-standin/run.mjs) runs inside a container that carries node alone,
// without node_modules, so it keeps node:child_process.
import { $ } from 'zx';

function shell({ cwd, env, input, stdio } = {}) {
  return $({
    quiet: true,
    verbose: false,
    nothrow: true,
    env: env ? { ...process.env, ...env } : process.env,
    ...(cwd ? { cwd } : {}),
    ...(input !== undefined ? { input } : {}),
    ...(stdio ? { stdio } : {}),
  });
}

/** `exec` so the tool itself is the process zx started: its exit and signal are its own. */
function launch(cmd, args, opts) {
  const p = shell(opts)`exec ${[cmd, ...args]}`;
  if (opts.input === undefined) p.stdin.end();
  return p;
}

/** Runs a tool to its end: {stdout, stderr}, or an Error naming the command and its stderr. */
export async function run(cmd, args, { cwd, input, env } = {}) {
  const out = await launch(cmd, args, { cwd, input, env });
  if (out.exitCode === 0) return { stdout: out.stdout, stderr: out.stderr };
  const why = out.signal ? `killed by ${out.signal}` : `exit status ${out.exitCode}`;
  throw new Error(`${cmd} ${args.join(' ')}: ${why}${out.stderr.trim() ? `: ${out.stderr.trim()}` : ''}`);
}

/** Runs a tool to its end, whatever its exit: {code, signal, stdout, stderr}. */
export async function attempt(cmd, args, opts = {}) {
  const out = await launch(cmd, args, opts);
  return { code: out.exitCode, signal: out.signal, stdout: out.stdout, stderr: out.stderr };
}

/** Starts a long-running tool with piped stdout and stderr. `ended` resolves with {code, signal}
 *  (127: the program was not found). */
export function startTool(cmd, args, { env } = {}) {
  const p = launch(cmd, args, { env, input: undefined });
  let running = true;
  const ended = p.then((out) => {
    running = false;
    return { code: out.exitCode, signal: out.signal };
  });
  return {
    stdout: p.stdout,
    stderr: p.stderr,
    ended,
    get running() {
      return running;
    },
    kill(signal = 'SIGTERM') {
      if (!running) return;
      p.kill(signal).catch(() => {});
    },
  };
}
