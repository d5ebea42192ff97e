// The one way the farm runs a local program (git, virsh, qemu-img, ssh-keygen, the notify
// command): through zx, from an argv array that zx quotes word by word, so nothing from the
// inventory or a remote reaches a shell unquoted. On top of zx it adds what every caller needs:
//
// - a MINIMAL environment. The farm holds cloud credentials in its own environment
//   (AWS_SECRET_ACCESS_KEY, OS_PASSWORD, IBMCLOUD_API_KEY, the service's tokens); a child gets
//   PATH, HOME, LANG, LC_*, TMPDIR and only the other names its caller passes (`pass`) or sets
//   (`env`), so a secret never reaches a program that has no use for it;
// - its own process group, so a timeout or an abort ends the program and whatever it started
//   (virsh's ssh, git's ssh or remote helper) together;
// - timeouts and AbortSignal, told apart in the error (ABORTED for the signal);
// - captured output, and a typed error (ProcessError, a FarmError) that carries the exit and the
//   last lines of stderr.
//
// zx's quoting is bash's ($'...'), right for the local bash zx runs; remote command lines keep
// src/core/quote.ts, see there.

import { $, type ProcessOutput, type ProcessPromise } from 'zx';
import { FarmError, type ErrorCode } from './errors.ts';
import { deadline } from './sleep.ts';

/** What every child gets from the farm's environment, whoever it is. */
export const BASE_ENV_NAMES: readonly string[] = ['PATH', 'HOME', 'LANG', 'TMPDIR'];

/**
 * The environment for a child: the base names (and LC_*) from `from`, the names in `pass` that
 * are set there, then `set` (undefined values remove a name). Nothing else.
 */
export function childEnv(
  from: NodeJS.ProcessEnv = process.env,
  pass: readonly string[] = [],
  set: Record<string, string | undefined> = {},
): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(from)) {
    if (value !== undefined && name.startsWith('LC_')) out[name] = value;
  }
  for (const name of [...BASE_ENV_NAMES, ...pass]) if (from[name] !== undefined) out[name] = from[name];
  for (const [name, value] of Object.entries(set)) {
    if (value === undefined) delete out[name];
    else out[name] = value;
  }
  return out;
}

export interface RunOptions {
  cwd?: string;
  /** Where base and passed names are read (default process.env). */
  envFrom?: NodeJS.ProcessEnv;
  /** More names to copy from envFrom, e.g. SSH_AUTH_SOCK for a program that runs ssh. */
  pass?: readonly string[];
  /** Variables set for the child (after the copied ones). */
  env?: Record<string, string | undefined>;
  /** The exact environment, replacing the minimal one (a caller that built its own). */
  exactEnv?: NodeJS.ProcessEnv;
  signal?: AbortSignal;
  /** Ends the program (its process group) after this long. */
  timeoutMs?: number;
  /** Fed to stdin; without it stdin is empty (never the farm's terminal). */
  input?: string | Buffer;
  /** Keeps stdin open for the caller to write (Started.stdin): a program driven line by line. */
  keepStdin?: boolean;
  /** Live stdout (it is captured as well). */
  onStdout?: (chunk: Buffer) => void;
  /** Live stderr (it is captured as well). */
  onStderr?: (chunk: Buffer) => void;
  /** Error code of the ProcessError for a failure (default STATE). */
  code?: ErrorCode;
  /** How messages name the program (default argv[0]). */
  what?: string;
  hint?: string;
}

export interface RunResult {
  /** Exit code; null when a signal ended the program. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** The program was ended for running longer than timeoutMs. */
  timedOut: boolean;
}

/** A program that failed: did not start, exited non-zero, was killed or timed out. */
export class ProcessError extends FarmError {
  constructor(
    code: ErrorCode,
    message: string,
    readonly result: RunResult | undefined,
    options: { hint?: string; cause?: unknown } = {},
  ) {
    super(code, message, options);
    this.name = 'ProcessError';
  }
  get stderr(): string {
    return this.result?.stderr ?? '';
  }
}

/** The last lines of stderr, joined for a one-line message. */
export function stderrTail(stderr: string, lines = 3): string {
  return stderr.trim().split('\n').slice(-lines).join('; ');
}

export interface Started {
  pid: number | undefined;
  /** Settles when the program has exited; rejects only when it could not start (ProcessError). */
  done: Promise<RunResult>;
  /** TERM to the program's process group. */
  kill(): void;
  /** The program's stdin, with `keepStdin` (end it to let the program finish). */
  stdin?: NodeJS.WritableStream;
}

/** Starts argv; `done` resolves with the exit whatever it is (see run() for a checked one). */
export function start(argv: readonly string[], opts: RunOptions = {}): Started {
  if (argv.length === 0) throw new TypeError('start: empty argv');
  const what = opts.what ?? argv[0]!;
  const env = opts.exactEnv ?? childEnv(opts.envFrom, opts.pass, opts.env);
  const shell = $({
    // bash (zx's shell) started with no SHLVL, or 0, takes ~100 ms longer to start on this kind of
    // host (measured: 2.6 ms with SHLVL=1, 117-149 ms without); it is no secret, so it goes along.
    env: { SHLVL: '1', ...env },
    ...(opts.cwd ? { cwd: opts.cwd } : {}),
    quiet: true,
    verbose: false,
    nothrow: true,
    detached: true, // its own process group: kill(-pid) reaches what it started
    ...(opts.input !== undefined ? { input: opts.input } : {}),
  });
  // `set -euo pipefail;` is zx's prefix; `exec` makes the program itself the group's leader, so
  // its exit status and signal are reported as they are, not through a waiting bash.
  const p: ProcessPromise = shell`exec ${argv}`;
  // A program that exits without reading its input makes the write fail with EPIPE: its exit
  // status (in `done`) is the answer, not an unhandled error on its stdin.
  p.stdin.on('error', () => undefined);
  if (opts.input === undefined && !opts.keepStdin) p.stdin.end();
  let settled = false;
  let aborted = false;
  const kill = (): void => {
    const pid = p.pid;
    if (pid === undefined || settled) return;
    try {
      process.kill(-pid, 'SIGTERM');
    } catch {
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        // gone already
      }
    }
  };
  const onAbort = (): void => {
    aborted = true;
    kill();
  };
  if (opts.signal?.aborted) queueMicrotask(onAbort);
  else opts.signal?.addEventListener('abort', onAbort, { once: true });
  const timer = deadline(opts.timeoutMs, kill);
  if (opts.onStdout) p.stdout.on('data', (d: Buffer) => opts.onStdout!(Buffer.isBuffer(d) ? d : Buffer.from(d)));
  if (opts.onStderr) p.stderr.on('data', (d: Buffer) => opts.onStderr!(Buffer.isBuffer(d) ? d : Buffer.from(d)));
  const done: Promise<RunResult> = (p as Promise<ProcessOutput>).then((out) => {
    settled = true;
    timer.clear();
    opts.signal?.removeEventListener('abort', onAbort);
    const cause = (out as unknown as { cause?: NodeJS.ErrnoException | null }).cause;
    if (cause && out.exitCode === null && out.signal === null) {
      throw new ProcessError(opts.code ?? 'STATE', `cannot run ${what}: ${cause.message}`, undefined, { cause, ...(opts.hint ? { hint: opts.hint } : {}) });
    }
    if (aborted) throw new FarmError('ABORTED', `cancelled: ${what}`);
    // bash reports a program it cannot find as 127, before exec: the program is not installed.
    if (out.exitCode === 127 && /^(?:\S*\/)?bash: (?:line \d+: )?(?:exec: .*: not found|.*: No such file or directory)$/m.test(out.stderr)) {
      throw new ProcessError(opts.code ?? 'STATE', `${what} is not installed (ENOENT: not found)`, result(out, false), opts.hint ? { hint: opts.hint } : {});
    }
    return result(out, timer.expired);
  });
  return { pid: p.pid, done, kill, ...(opts.keepStdin ? { stdin: p.stdin } : {}) };
}

function result(out: ProcessOutput, timedOut: boolean): RunResult {
  return { code: out.exitCode, signal: out.signal, stdout: out.stdout, stderr: out.stderr, timedOut };
}

/** How a finished program ended, for messages: "exited with code 2", "timed out after 30 s". */
export function howItEnded(r: RunResult, timeoutMs?: number): string {
  if (r.timedOut) return `timed out after ${Number(((timeoutMs ?? 0) / 1000).toFixed(1))} s`;
  if (r.code === null) return `was killed by ${r.signal ?? 'a signal'}`;
  return `exited with code ${r.code}`;
}

/** Runs argv to its end; a non-zero exit, a signal or a timeout is a ProcessError with stderr. */
export async function run(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const r = await start(argv, opts).done;
  if (r.code === 0 && !r.timedOut) return r;
  const what = opts.what ?? argv[0]!;
  const tail = stderrTail(r.stderr);
  throw new ProcessError(opts.code ?? 'STATE', `${what} ${howItEnded(r, opts.timeoutMs)}${tail ? `: ${tail}` : ''}`, r, opts.hint ? { hint: opts.hint } : {});
}
