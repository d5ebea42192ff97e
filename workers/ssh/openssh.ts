// Bulk data over the OpenSSH client. Node's ssh2 decrypts every packet on the event loop
// (~2 CPU-s per GiB on the lab against ~0.9 for OpenSSH's client, see test/bench/fetch.bench.ts),
// and that loop also hashes and writes what arrives. For streams of image data the coordinator
// runs `ssh` as a child process instead: decryption moves to its own process and the loop only
// reads a pipe. Everything else (commands, podman's socket) stays on the one ssh2 connection.
//
// The child trusts exactly the host key that the ssh2 connection verified (written to a private
// known_hosts under an alias, StrictHostKeyChecking=yes), authenticates the same way (the same
// identity file, or the same agent), reads no ssh_config (-F /dev/null) and never prompts.
//
// One master connection per worker (ssh -M, our own child, its control socket in our private
// directory) carries the streams once it is up: a stream then starts with a channel, not a new
// key exchange and login (~0.25 s on the lab). ready() starts it, so a caller can overlap that
// with other work. A stream falls back to a connection of its own while the master is not up,
// when it has died (ssh does so itself when the socket does not answer), and beyond
// MUX_STREAMS at once (sshd's MaxSessions is 10 by default; separate processes also spread the
// decryption over cores).

import { spawn as spawnChild, type ChildProcess } from 'node:child_process';
import { accessSync, constants as fsConstants } from 'node:fs';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { PassThrough } from 'node:stream';
import { FarmError, throwIfAborted } from '../../src/core/errors.ts';
import { childEnv } from '../../src/core/process.ts';
import { OPENSSH_CIPHERS } from '../../src/core/ssh-ciphers.ts';
import type { WorkerEndpoint as Worker } from '../endpoint.ts';
import type { ExecResult, RemoteProcess } from '../transport.ts';
import type { HostKey } from '../../src/core/hostkeys.ts';

/** How bulk streams travel: `auto` uses the OpenSSH client when `ssh` is installed. */
export type BulkMode = 'auto' | 'openssh' | 'ssh2';

const STDERR_CAP = 64 * 1024;
/** The master connection's own session: it lasts as long as its stdin (see startMaster). */
const MASTER_COMMAND = 'exec cat >/dev/null';
// What the mux client says when sshd refuses a session on the master's connection.
const SESSION_REFUSED = /session request failed|Session open refused/i;
/** Streams at once over the master connection; more get connections of their own. */
export const MUX_STREAMS = 4;
/** How long dispose() lets the master end on SIGTERM before it is killed. */
export const DISPOSE_GRACE_MS = 2_000;

export type BulkAuth = { identityFile: string } | { agent: string };

/** ssh's environment: the minimal one (src/core/process.ts) and the agent. These children stay
 *  on node:child_process rather than zx: a stream's stdout is the artifact's file descriptor or
 *  a pipe read as it flows, and zx keeps every byte of a child's output in memory. */
function sshEnv(): NodeJS.ProcessEnv {
  return childEnv(process.env, ['SSH_AUTH_SOCK']);
}

/** The `ssh` program on PATH, if any. */
export function findSshClient(path = process.env.PATH ?? ''): string | undefined {
  for (const dir of path.split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, 'ssh');
    try {
      accessSync(candidate, fsConstants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** The known_hosts line that trusts exactly `key` under `alias`. */
export function knownHostsLine(alias: string, key: HostKey): string {
  return `${alias} ${key.keyType} ${key.blob.toString('base64')}\n`;
}

/** argv (after the program) for running `commandLine` on the worker. `commandLine` is already
 *  quoted for the remote shell; ssh passes it on as the exec request, as ssh2 does. */
/** How a command's ssh uses the worker's master connection: none (a connection of its own),
 *  master (-M: be the master, listening on the socket) or client (a stream over that master). */
export type SshControl = { mode: 'none' } | { mode: 'master'; socket: string } | { mode: 'client'; socket: string };

export function sshArgv(
  worker: Pick<Worker, 'host' | 'port' | 'user' | 'name'>,
  knownHostsFile: string,
  auth: BulkAuth,
  commandLine: string,
  options: { connectTimeoutS?: number; keepaliveS?: number; control?: SshControl } = {},
): string[] {
  const { connectTimeoutS = 20, keepaliveS = 15, control = { mode: 'none' } } = options;
  const o = (kv: string) => ['-o', kv];
  return [
    '-F', '/dev/null', // no user or system ssh_config: same host, port, user and key as the ssh2 connection
    '-T', '-x', '-a', // no tty, no X11 or agent forwarding
    '-p', String(worker.port),
    '-l', worker.user,
    ...o('BatchMode=yes'),
    ...o('StrictHostKeyChecking=yes'),
    ...o(`UserKnownHostsFile=${knownHostsFile}`),
    ...o('GlobalKnownHostsFile=/dev/null'),
    ...o(`HostKeyAlias=${hostAlias(worker.name)}`),
    ...o('CheckHostIP=no'),
    ...o('UpdateHostKeys=no'),
    ...o(`Ciphers=${OPENSSH_CIPHERS}`),
    ...o(`ConnectTimeout=${Math.ceil(connectTimeoutS)}`),
    ...o(`ServerAliveInterval=${Math.ceil(keepaliveS)}`),
    ...o('ServerAliveCountMax=4'),
    ...(control.mode === 'none' ? [...o('ControlMaster=no'), ...o('ControlPath=none')] : []),
    ...(control.mode === 'master' ? ['-M', ...o('ControlMaster=yes'), ...o(`ControlPath=${control.socket}`), ...o('ControlPersist=no')] : []),
    ...(control.mode === 'client' ? [...o('ControlMaster=no'), ...o(`ControlPath=${control.socket}`)] : []),
    ...o('ClearAllForwardings=yes'),
    ...o('PermitLocalCommand=no'),
    ...o('LogLevel=ERROR'),
    ...('identityFile' in auth
      ? [...o('IdentitiesOnly=yes'), ...o('IdentityAgent=none'), '-i', auth.identityFile]
      : [...o(`IdentityAgent=${auth.agent}`)]),
    '--',
    worker.host,
    commandLine,
  ];
}

function hostAlias(workerName: string): string {
  return `farm-worker-${workerName.replace(/[^A-Za-z0-9._-]/g, '_')}`;
}

/** Starts bulk streams on one worker through the OpenSSH client. */
export class OpenSshBulk {
  private master: ChildProcess | undefined;
  private masterUp: Promise<boolean> | undefined;
  private masterFailure = '';
  private up = false;
  private streams = 0;
  /** Streams the master may carry at once: MUX_STREAMS, or fewer once the worker refused one. */
  private muxLimit = MUX_STREAMS;
  private disposed = false;

  private constructor(
    private readonly program: string,
    private readonly worker: Worker,
    private readonly dir: string,
    private readonly auth: BulkAuth,
    private readonly options: { connectTimeoutS?: number; keepaliveS?: number },
  ) {}

  /** Writes the private known_hosts (mode 0600, in a fresh 0700 directory) for the verified key. */
  static async prepare(
    program: string,
    worker: Worker,
    hostKey: HostKey,
    auth: BulkAuth,
    options: { connectTimeoutS?: number; keepaliveS?: number } = {},
  ): Promise<OpenSshBulk> {
    const dir = await mkdtemp(join(tmpdir(), 'farm-ssh-'));
    await writeFile(join(dir, 'known_hosts'), knownHostsLine(hostAlias(worker.name), hostKey), { mode: 0o600 });
    return new OpenSshBulk(program, worker, dir, auth, options);
  }

  private get socket(): string {
    return join(this.dir, 'mux');
  }

  /** Starts the master connection (once) and resolves when streams can use it: true when it is up,
   *  false when it could not come up (streams then connect on their own; why is in masterError). */
  ready(signal?: AbortSignal): Promise<boolean> {
    throwIfAborted(signal);
    if (this.up && this.masterPid === undefined) {
      // It was up and has ended (the link dropped, ServerAlive gave up): connect it again.
      this.up = false;
      this.masterFailure = '';
      this.masterUp = undefined;
    }
    this.masterUp ??= this.startMaster();
    if (!signal) return this.masterUp;
    // Waiting is cancellable; the master itself belongs to this object and ends with dispose().
    return new Promise<boolean>((resolve, reject) => {
      const onAbort = () => reject(new FarmError('ABORTED', `cancelled while connecting to ${this.worker.name}`));
      signal.addEventListener('abort', onAbort, { once: true });
      this.masterUp!.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
    });
  }

  /** Why the master connection is not up, if it failed. */
  get masterError(): string {
    return this.masterFailure;
  }

  /** The master connection's process, while it runs. */
  get masterPid(): number | undefined {
    return this.master && running(this.master) ? this.master.pid : undefined;
  }

  /** Whether streams started now go over the master connection. */
  get multiplexing(): boolean {
    return this.up && !this.masterFailure && this.masterPid !== undefined;
  }

  private async startMaster(): Promise<boolean> {
    if (this.disposed) return false;
    // A socket left by a master that was killed would make ssh run without one.
    await rm(this.socket, { force: true });
    // The master's own session reads its stdin, a pipe from this process: if the farm dies
    // without dispose() (SIGKILL, OOM), the pipe closes, `cat` ends and so does the master,
    // rather than a connection kept alive by keepalives forever.
    const argv = sshArgv(this.worker, join(this.dir, 'known_hosts'), this.auth, MASTER_COMMAND, {
      ...this.options,
      control: { mode: 'master', socket: this.socket },
    });
    const master = spawnChild(this.program, argv, { stdio: ['pipe', 'ignore', 'pipe'], env: sshEnv() });
    master.stdin!.on('error', () => {});
    this.master = master;
    let stderr = '';
    master.stderr!.on('data', (chunk: Buffer) => {
      if (stderr.length < STDERR_CAP) stderr += chunk.toString('utf8');
    });
    let exited = false; // this master, not a later one
    const exit = new Promise<void>((resolve) => {
      master.once('error', (err) => {
        if (this.master === master) this.masterFailure ||= `cannot run ssh: ${err.message}`;
        exited = true;
        resolve();
      });
      master.once('close', (code) => {
        if (this.master === master) this.masterFailure ||= stderr.trim().slice(-1000) || `ssh exited with code ${code}`;
        exited = true;
        resolve();
      });
    });
    // ssh opens its control socket once the connection is authenticated.
    const deadline = performance.now() + ((this.options.connectTimeoutS ?? 20) + 10) * 1000;
    while (!exited && performance.now() < deadline) {
      if (await stat(this.socket).then((st) => st.isSocket(), () => false)) return (this.up = !exited);
      await Promise.race([exit, new Promise((r) => setTimeout(r, 10))]);
    }
    if (!exited) {
      this.masterFailure = 'the master connection did not come up in time';
      master.kill('SIGTERM');
    }
    return false;
  }

  /** Runs `commandLine`; the child is killed when `signal` fires or kill() is called. With
   *  `stdoutFd`, ssh writes the output into that file itself: no pipe, nothing passes Node. */
  spawn(commandLine: string, signal?: AbortSignal, stdoutFd?: number): RemoteProcess {
    throwIfAborted(signal);
    const shared = this.multiplexing && this.streams < this.muxLimit;
    const argv = sshArgv(this.worker, join(this.dir, 'known_hosts'), this.auth, commandLine, {
      ...this.options,
      control: shared ? { mode: 'client', socket: this.socket } : { mode: 'none' },
    });
    const child = spawnChild(this.program, argv, { stdio: ['pipe', stdoutFd ?? 'pipe', 'pipe'], env: sshEnv() });
    if (shared) {
      // sshd's MaxSessions counts the master's own session and every stream on it. When a worker
      // allows fewer, ssh falls back to a connection of its own for the refused stream; later
      // streams beyond what was open then skip the master from the start.
      const alongside = this.streams;
      let refused = false;
      child.stderr!.on('data', (chunk: Buffer) => {
        refused ||= SESSION_REFUSED.test(chunk.toString('utf8'));
      });
      this.streams++;
      child.once('close', () => {
        this.streams--;
        if (refused) this.muxLimit = Math.min(this.muxLimit, alongside);
      });
    }
    return childProcess(child, this.worker, commandLine, signal);
  }

  /** Ends the master connection (our own child, by its PID) and removes the private directory.
   *  A master that does not end within `graceMs` of SIGTERM (a dead link it still writes to) is
   *  killed: closing never waits on the network. */
  async dispose(graceMs = DISPOSE_GRACE_MS): Promise<void> {
    this.disposed = true;
    const master = this.master;
    if (master && running(master)) {
      const closed = new Promise((r) => master.once('close', r));
      master.kill('SIGTERM');
      const ended = await Promise.race([closed.then(() => true), delay(graceMs).then(() => false)]);
      if (!ended && running(master)) {
        master.kill('SIGKILL');
        await Promise.race([closed, delay(graceMs)]);
      }
    }
    await rm(this.dir, { recursive: true, force: true });
  }
}

/** A timer that never holds the process open. */
function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms).unref());
}

/** Neither exited nor killed yet. */
function running(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

function childProcess(child: ChildProcess, worker: Worker, commandLine: string, signal: AbortSignal | undefined): RemoteProcess {
  let stderr = '';
  let killed = false;
  child.stderr!.on('data', (chunk: Buffer) => {
    if (stderr.length < STDERR_CAP) stderr += chunk.toString('utf8').slice(0, STDERR_CAP - stderr.length);
  });
  // A failed spawn surfaces through `done`; stdin errors (EPIPE after the remote side closed) do too.
  const stdin = child.stdin!;
  stdin.on('error', () => {});
  const kill = () => {
    if (killed) return;
    killed = true;
    child.kill('SIGTERM');
  };
  const onAbort = () => kill();
  signal?.addEventListener('abort', onAbort, { once: true });
  const shownLine = commandLine.length > 300 ? `${commandLine.slice(0, 300)}...` : commandLine;
  const done = new Promise<ExecResult>((resolve, reject) => {
    child.once('error', (err) => {
      signal?.removeEventListener('abort', onAbort);
      reject(new FarmError('SSH', `cannot run ssh for \`${shownLine}\` on ${worker.name}: ${err.message}`, { cause: err }));
    });
    // 'close' comes after stdout and stderr ended, so the output is complete.
    child.once('close', (code, sig) => {
      signal?.removeEventListener('abort', onAbort);
      if (signal?.aborted) return reject(new FarmError('ABORTED', `cancelled: \`${shownLine}\` on ${worker.name}`));
      if (code === 255 && !killed) {
        // ssh's own failures (connect, host key, auth) exit 255; a remote 255 is rare and says so too.
        return reject(
          new FarmError('SSH', `ssh to ${worker.name} (${worker.host}:${worker.port}) failed for \`${shownLine}\`: ${stderr.trim().slice(-1000) || 'exit code 255'}`, {
            hint: 'check that the OpenSSH client reaches the worker as the farm does, or set settings.bulk_transfer: ssh2 in the inventory',
          }),
        );
      }
      resolve({ code: code ?? 128 + 15, signal: sig ?? undefined, stdout: '', stderr });
    });
  });
  done.catch(() => {}); // callers that only kill() must not see an unhandled rejection
  const stdout = child.stdout ?? new PassThrough().end();
  return { stdout, stdin, done, kill };
}
